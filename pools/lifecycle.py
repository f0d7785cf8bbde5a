"""A pool's lifecycle steps, once for the pages and the REST API: which job each step is, the forms that
confirm the destructive ones (pools/forms.py), and the launch. Each step is a job (pools/tasks.py): even a
quick start may mount an NFS export that hangs.
"""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.utils.translation import gettext as _

from hosts import status
from hosts.models import Host
from jobs.audit_records import audit_job
from jobs.models import Job
from jobs.rows import for_update
from jobs.runner import JobConflict, JobError, launch
from virtstorage.virt import pools as vpools

from .define_forms import TYPE_FIELDS, PoolDefineForm, RawPoolXmlForm
from .forms import BuildPoolForm, DeletePoolForm
from .models import StoragePool
from .tasks import (
    autostart_pool_job,
    build_pool_job,
    define_pool_job,
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
        form.add_error(None, _("Pool %(pool)s is running: libvirt builds only stopped pools. Stop it first.")
                       % {"pool": pool.name})
    return form


def build(pool: StoragePool, form: forms.Form, *, user, request=None) -> Job:
    return start_job(pool, build_pool_job, "pool-build", {"overwrite": bool(form.cleaned_data.get("overwrite"))},
                     user=user, request=request)


def delete_form(data, pool: StoragePool) -> DeletePoolForm:
    return DeletePoolForm(data, pool=pool)


def delete(pool: StoragePool, form: forms.Form, *, user, request=None) -> Job:
    return start_job(pool, delete_pool_job, "pool-delete", {"delete_volumes": form.cleaned_data["delete_volumes"]},
                     user=user, request=request)


# -- define ------------------------------------------------------------------------------------------

DEFINE_KIND = "pool-define"


def type_refusal(host: Host, pool_type: str, supported: dict[str, vpools.PoolTypeSupport]) -> str:
    """Why host cannot define a pool of this type ("xml": pasted XML, checked by its form), "" when it can."""
    if pool_type == "xml":
        return ""
    if pool_type not in TYPE_FIELDS:
        return _("There is no form for pool type '%(type)s': use one of %(types)s, or xml.") % {
            "type": pool_type[:40], "types": ", ".join(TYPE_FIELDS)}
    found = supported.get(pool_type)
    if found is None or not found.supported:
        return _("libvirt on %(host)s reports that it does not support %(type)s pools (its storage driver was built "
                 "without them), so this host cannot define one.") % {"host": host.name, "type": pool_type}
    return ""


def define_form(data, host: Host, pool_type: str,
                supported: dict[str, vpools.PoolTypeSupport]) -> PoolDefineForm | RawPoolXmlForm:
    """The define form of a pool type of TYPE_FIELDS, or of pasted XML ("xml"), with the pool types host supports
    as its last check or sync recorded them (neither the page nor the API asks libvirt)."""
    if pool_type == "xml":
        return RawPoolXmlForm(data, host=host, supported=supported)
    return PoolDefineForm(data, host=host, pool_type=pool_type, support=supported.get(pool_type))


def refuse_unreachable(form: forms.Form, host: Host) -> None:
    """A host recorded unreachable (or disabled for its URI) is refused at the form at once, rather than its job
    waiting for it."""
    if problem := status.unavailable_reason(host):
        form.add_error(None, _("%(problem)s. Check the host, then try again.") % {"problem": problem.rstrip(".")})


def start_define(host: Host, xml: str, start_now: bool, *, user, request=None) -> Job:
    """Launch the job that defines the pool of xml (its form checked it) on host and, with start_now, then builds
    and starts it. Raises JobError: the name is a pool of host already or being defined there, the queue is down.
    """
    name = vpools.summarize_pool_xml(xml).name
    params = {"xml": xml, "start_now": bool(start_now)}
    job = None
    try:
        with transaction.atomic():
            # The host's row, locked, serializes define launches on it: two of one name cannot both pass.
            for_update(Host.objects.filter(pk=host.pk)).first()
            if StoragePool.objects.filter(host=host, name=name).exists():
                raise JobConflict(_("%(host)s already has a pool named %(name)s.") % {"host": host.name, "name": name})
            pending = Job.objects.active().filter(host=host, kind=DEFINE_KIND, pool_name=name).first()
            if pending is not None:
                raise JobConflict(_("Pool %(pool)s is being defined on %(host)s by job #%(job)s; wait for it to "
                                    "finish.") % {"pool": name, "host": host.name, "job": pending.pk})
            job = launch(define_pool_job, kind=DEFINE_KIND, user=user, host=host, pool_name=name, params=params,
                         request=request)
    except JobError as exc:
        if job is None:  # refused: launch's own record of a refusal went with the rolled back transaction
            refused = Job(kind=DEFINE_KIND, host=host, pool_name=name, params=params,
                          created_by=user if user is not None and user.is_authenticated else None)
            audit_job(refused, "refused", request=request, error=str(exc))
        raise
    return job
