"""Volume operations, once for the pages and the REST API: the form that checks an operation (volumes/forms.py),
bound the same way wherever the data comes from, and the job a valid form launches.

``bind(op, data, ...)`` gives the operation's form; ``launch(op, form, ...)`` turns its cleaned data into the
job's parameters and calls jobs.runner.launch (which records the audit entry and refuses a busy volume, a
queue that is down or, under the grant's lock, a team's quota that no longer has room, with JobError).
No libvirt call happens here: the job does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms

from accounts.roles import is_admin
from jobs.models import Job
from jobs.runner import launch as launch_job
from pools.models import StoragePool
from virtstorage.virt.volumes import wipe_algorithms

from . import tasks
from .forms import VolumeCloneForm, VolumeCreateForm, VolumeDeleteForm, VolumeResizeForm, VolumeWipeForm
from .models import Volume
from .quota import launch_fields

# What each operation needs of the user (accounts.access.NEEDS names it the same).
ACTIONS = {"create": "create", "clone": "clone", "resize": "resize", "delete": "delete", "wipe": "wipe"}


@dataclass(frozen=True)
class Operation:
    task: Callable
    params: Callable[[forms.Form], dict]
    cancellable: bool
    # (pool, volume name) of a second place the job writes, held busy while it runs (a clone's copy).
    target: Callable[[forms.Form], tuple] | None = None


def _create_params(form: forms.Form) -> dict:
    data = form.cleaned_data
    backing = data["backing"]
    return {"name": data["name"], "capacity": data["capacity"], "format": data["format"],
            "preallocation": data["provisioning"],
            "backing_path": backing.path if backing else "", "backing_format": backing.format if backing else ""}


OPERATIONS: dict[str, Operation] = {
    "create": Operation(tasks.create_volume_job, _create_params, cancellable=True),
    "clone": Operation(tasks.clone_volume_job, lambda form: {
        "name": form.cleaned_data["name"], "target_pool": form.cleaned_data["target_pool"].name,
        "format": form.cleaned_data["format"]}, cancellable=False,
        target=lambda form: (form.cleaned_data["target_pool"], form.cleaned_data["name"])),
    "resize": Operation(tasks.resize_volume_job, lambda form: {
        "capacity": form.cleaned_data["capacity"], "allocate": form.cleaned_data["allocate"],
        "shrink": form.shrinking, "force": bool(form.cleaned_data.get("force"))}, cancellable=True),
    "delete": Operation(tasks.delete_volume_job, lambda form: {"force": bool(form.cleaned_data.get("force"))},
                        cancellable=True),
    "wipe": Operation(tasks.wipe_volume_job, lambda form: {
        "algorithm": form.cleaned_data["algorithm"], "force": bool(form.cleaned_data.get("force"))},
        cancellable=False),
}


def wipe_choices(volume: Volume) -> list:
    """The wipe patterns of the volume's host and pool type (the form offers the available ones)."""
    return wipe_algorithms(volume.pool.host.uri, volume.pool.type)


def bind(op: str, data, *, user, volume: Volume | None = None, pool: StoragePool | None = None,
         choices: list | None = None) -> forms.Form:
    """The operation's form with data (None: unbound), as the page and the API both build it."""
    if op == "create":
        return VolumeCreateForm(data, pool=pool, user=user)
    if op == "clone":
        return VolumeCloneForm(data, volume=volume, user=user)
    can_force = is_admin(user)
    if op == "resize":
        return VolumeResizeForm(data, volume=volume, can_force=can_force)
    if op == "delete":
        return VolumeDeleteForm(data, volume=volume, can_force=can_force)
    if op == "wipe":
        return VolumeWipeForm(data, volume=volume, can_force=can_force,
                              choices=choices if choices is not None else wipe_choices(volume))
    raise ValueError(f"No volume operation {op!r}.")


def launch(op: str, form: forms.Form, *, user, request=None, volume: Volume | None = None,
           pool: StoragePool | None = None) -> Job:
    """Launch the job of a valid form: into pool (create) or on volume (the others). Raises JobError."""
    operation = OPERATIONS[op]
    target_pool, target_volume_name = operation.target(form) if operation.target else (None, "")
    if op == "create":
        volume_name = form.cleaned_data["name"]
    else:
        pool, volume_name = volume.pool, volume.name
    charged = launch_fields(operation.params(form), getattr(form, "charge", None))  # a team's quota, held
    return launch_job(operation.task, kind=op, user=user, request=request, host=pool.host, pool=pool,
                      volume_name=volume_name, cancellable=operation.cancellable,
                      target_pool=target_pool, target_volume_name=target_volume_name, **charged)
