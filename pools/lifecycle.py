"""A pool's lifecycle steps, once for the pages and the REST API: which job each step is, the forms that
confirm the destructive ones (pools/forms.py), and the launch. Each step is a job (pools/tasks.py): even a
quick start may mount an NFS export that hangs.
"""

from __future__ import annotations

from django import forms

from jobs.models import Job
from jobs.runner import launch

from .forms import BuildPoolForm, DeletePoolForm
from .models import StoragePool
from .tasks import (
    autostart_pool_job,
    build_pool_job,
    delete_pool_job,
    refresh_pool_job,
    start_pool_job,
    stop_pool_job,
    undefine_pool_job,
)

# Quick actions from the pool card: URL verb -> (job task, kind, params).
QUICK_ACTIONS = {
    "start": (start_pool_job, "pool-start", {}),
    "stop": (stop_pool_job, "pool-stop", {}),
    "refresh": (refresh_pool_job, "pool-refresh", {}),
    "autostart-on": (autostart_pool_job, "pool-autostart", {"enabled": True}),
    "autostart-off": (autostart_pool_job, "pool-autostart", {"enabled": False}),
    "undefine": (undefine_pool_job, "pool-undefine", {}),
}


def start_job(pool: StoragePool, task, kind: str, params: dict, *, user, request=None) -> Job:
    """Launch one lifecycle job on the pool. Raises JobError (another job on the pool, queue down)."""
    return launch(task, kind=kind, user=user, host=pool.host, pool=pool, params=params, request=request)


def quick(pool: StoragePool, action: str, *, user, request=None) -> Job:
    """Start, stop, refresh, autostart on/off or undefine. KeyError for an unknown action; JobError."""
    task, kind, params = QUICK_ACTIONS[action]
    return start_job(pool, task, kind, params, user=user, request=request)


def build_form(data, pool: StoragePool) -> BuildPoolForm:
    """The build form; bound, it also refuses a running pool (libvirt builds only stopped ones)."""
    form = BuildPoolForm(data, pool=pool)
    if data is not None and pool.is_active:
        form.add_error(None, f"Pool {pool.name} is running: libvirt builds only stopped pools. Stop it first.")
    return form


def build(pool: StoragePool, form: forms.Form, *, user, request=None) -> Job:
    return start_job(pool, build_pool_job, "pool-build", {"overwrite": bool(form.cleaned_data.get("overwrite"))},
                     user=user, request=request)


def delete_form(data, pool: StoragePool) -> DeletePoolForm:
    return DeletePoolForm(data, pool=pool)


def delete(pool: StoragePool, form: forms.Form, *, user, request=None) -> Job:
    return start_job(pool, delete_pool_job, "pool-delete", {"delete_volumes": form.cleaned_data["delete_volumes"]},
                     user=user, request=request)
