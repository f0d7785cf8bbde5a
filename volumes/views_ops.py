"""Views of volume operations: validate the form, launch the job, show its page.

No libvirt call happens here: the job does the work and refreshes the inventory.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from accounts import access
from accounts.roles import is_admin, member_required
from jobs.models import Job
from jobs.runner import JobError, launch
from pools.models import StoragePool
from virtstorage.virt.volumes import wipe_algorithms

from . import tasks
from .forms import (
    BACKING_OPTIONS,
    VolumeCloneForm,
    VolumeCreateForm,
    VolumeDeleteForm,
    VolumeResizeForm,
    VolumeWipeForm,
    backing_candidates,
    backing_label,
)
from .models import Volume


def _volume(request: HttpRequest, pk: int, action: str) -> Volume:
    """The volume if the user may see it (404 otherwise) and may do this to it (403 otherwise)."""
    volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool", "pool__host"), pk=pk)
    access.require(request.user, action, volume.pool)
    return volume


def _pool(request: HttpRequest, pk: int, action: str) -> StoragePool:
    pool = get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"), pk=pk)
    access.require(request.user, action, pool)
    return pool


def _start(request: HttpRequest, form: forms.Form, task, **job) -> Job | None:
    """Launch the job; a refusal (queue down, volume busy) becomes a form error and nothing is lost."""
    try:
        started = launch(task, user=request.user, request=request, **job)
    except JobError as exc:
        form.add_error(None, str(exc))
        return None
    for warning in getattr(form, "warnings", []):
        messages.warning(request, warning)
    return started


def _page(request: HttpRequest, op: str, form: forms.Form, pool: StoragePool, volume: Volume | None = None,
          **extra) -> HttpResponse:
    context = {"op": op, "form": form, "pool": pool, "volume": volume, **extra}
    if volume is not None and op in ("delete", "wipe"):
        context["users"] = list(volume.users())  # as of the last sync; the job checks libvirt again
    return render(request, "volumes/volume_op.html", context, status=400 if form.errors else 200)


@member_required
@require_GET
def backing_options(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """The backing volume picker's options for what was typed in its search box (htmx)."""
    pool = _pool(request, pool_pk, "view")
    query = request.GET.get("backing_search", "").strip()
    volumes = backing_candidates(pool, request.user)
    if query:
        volumes = volumes.filter(name__icontains=query)
    return render(request, "volumes/_backing_options.html",
                  {"options": [(v.pk, backing_label(v)) for v in volumes[:BACKING_OPTIONS]], "query": query,
                   "more": volumes[BACKING_OPTIONS:BACKING_OPTIONS + 1].exists()})


@member_required
def volume_create(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _pool(request, pool_pk, "create")
    form = VolumeCreateForm(request.POST or None, pool=pool, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        backing = data["backing"]
        params = {"name": data["name"], "capacity": data["capacity"], "format": data["format"],
                  "preallocation": data["provisioning"],
                  "backing_path": backing.path if backing else "", "backing_format": backing.format if backing else ""}
        job = _start(request, form, tasks.create_volume_job, kind="create", host=pool.host, pool=pool,
                     volume_name=data["name"], params=params, cancellable=True)
        if job:
            return redirect(job)
    return _page(request, "create", form, pool)


def _volume_op(request: HttpRequest, op: str, volume: Volume, form: forms.Form, task,
               params: Callable[[dict], dict], *, cancellable: bool,
               target: Callable[[dict], tuple] | None = None, **extra) -> HttpResponse:
    """The common shape of an operation on one volume: valid form -> job -> job page; else the form again.

    target(data) gives (pool, volume name) of a second place the job writes, held busy while it runs."""
    if request.method == "POST" and form.is_valid():
        target_pool, target_volume_name = target(form.cleaned_data) if target else (None, "")
        job = _start(request, form, task, kind=op, host=volume.pool.host, pool=volume.pool,
                     volume_name=volume.name, params=params(form.cleaned_data), cancellable=cancellable,
                     target_pool=target_pool, target_volume_name=target_volume_name)
        if job:
            return redirect(job)
    return _page(request, op, form, volume.pool, volume, **extra)


@member_required
def volume_clone(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "clone")
    form = VolumeCloneForm(request.POST or None, volume=volume, user=request.user)
    return _volume_op(request, "clone", volume, form, tasks.clone_volume_job, lambda data: {
        "name": data["name"], "target_pool": data["target_pool"].name, "format": data["format"],
    }, cancellable=False, target=lambda data: (data["target_pool"], data["name"]))


@member_required
def volume_resize(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "resize")
    form = VolumeResizeForm(request.POST or None, volume=volume, can_force=is_admin(request.user))
    return _volume_op(request, "resize", volume, form, tasks.resize_volume_job, lambda data: {
        "capacity": data["capacity"], "allocate": data["allocate"], "shrink": form.shrinking,
        "force": bool(data.get("force")),
    }, cancellable=True)


@member_required
def volume_delete(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "delete")
    form = VolumeDeleteForm(request.POST or None, volume=volume, can_force=is_admin(request.user))
    return _volume_op(request, "delete", volume, form, tasks.delete_volume_job,
                      lambda data: {"force": bool(data.get("force"))}, cancellable=True)


@member_required
def volume_wipe(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "wipe")
    choices = wipe_algorithms(volume.pool.host.uri, volume.pool.type)
    form = VolumeWipeForm(request.POST or None, volume=volume, can_force=is_admin(request.user), choices=choices)
    return _volume_op(request, "wipe", volume, form, tasks.wipe_volume_job, lambda data: {
        "algorithm": data["algorithm"], "force": bool(data.get("force")),
    }, cancellable=False, choices=choices)
