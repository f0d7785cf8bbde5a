"""Views of the image tools: the volume page's Image panel (qemu-img info), and check, convert and import.

The panel is fetched by htmx after the volume page has loaded (the page never waits for qemu-img); it reads
only files the image check passed (image_files), on a host that is this machine. Check, convert and import
are jobs (tools_tasks).
"""

from __future__ import annotations

import time

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import access
from accounts.roles import member_required
from jobs.models import Job
from jobs.runner import JobError, launch
from virtstorage.virt import VirtError, open_host, qemuimg
from virtstorage.virt.imagecheck import UnsafeImage

from . import image_files, tools_tasks
from .models import Volume
from .tools_forms import ConvertForm, ImportForm
from .views_ops import _pool, _start, _volume


def _image_report(volume: Volume) -> dict:
    """qemu-img info of the volume and of each verified file below it; or why there is none."""
    host = volume.pool.host
    if reason := image_files.unavailable_reason(host):
        return {"unavailable": reason}
    if volume.unsafe_reason:
        return {"refused": volume.unsafe_reason}
    if not volume.pool.is_active:
        return {"unavailable": f"Pool {volume.pool.name} is stopped: start it to read its images."}
    deadline = time.monotonic() + qemuimg.INFO_TIMEOUT_SECONDS  # for the whole chain, not each file
    try:
        with open_host(host.uri) as lv, image_files.open_chain(host, lv, volume.pool.name, volume.name) as chain:
            infos = [qemuimg.info(chain.image(index, with_backing=False),
                                  timeout=max(1.0, deadline - time.monotonic())) for index in range(len(chain.links))]
    except UnsafeImage as exc:
        return {"refused": str(exc)}
    except (image_files.ToolsUnavailable, VirtError) as exc:
        return {"unavailable": str(exc)}
    return {"info": infos[0], "live": chain.links[0].info, "chain": list(zip(chain.links[1:], infos[1:],
                                                                            strict=True))}


@member_required
@require_GET
def image_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The Image panel of the volume page (htmx): qemu-img beside libvirt, the provisioning, the tools."""
    volume = _volume(request, pk, "view")
    may_use = access.may(request.user, "clone", volume.pool)
    last_check = Job.objects.visible_to(request.user).filter(kind="check", pool=volume.pool,
                                                             volume_name=volume.name).first()
    return render(request, "volumes/_image_panel.html", {
        "volume": volume, "pool": volume.pool, "may_use": may_use, "last_check": last_check,
        **_image_report(volume)})


@require_POST
@member_required
def image_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Start qemu-img check of a qcow2 volume (read only)."""
    volume = _volume(request, pk, "clone")
    refusal = volume.unsafe_reason or image_files.unavailable_reason(volume.pool.host)
    if not refusal and (volume.recorded_format or volume.format) != "qcow2":
        refusal = f"{volume.name} is a {volume.format or 'raw'} volume: only qcow2 images have metadata to check."
    if refusal:
        messages.error(request, f"Refused: {refusal}")
        return redirect(volume)
    try:
        job = launch(tools_tasks.check_image_job, kind="check", user=request.user, host=volume.pool.host,
                     pool=volume.pool, volume_name=volume.name, cancellable=True, request=request)
    except JobError as exc:
        messages.error(request, str(exc))
        return redirect(volume)
    return redirect(job)


@member_required
def image_convert(request: HttpRequest, pk: int) -> HttpResponse:
    """Convert a volume (raw ↔ qcow2, optionally compressed or preallocated) into a new volume."""
    volume = _volume(request, pk, "clone")
    form = ConvertForm(request.POST or None, volume=volume, user=request.user)
    if request.method == "POST" and form.is_valid():
        target = form.cleaned_data["target_pool"]
        job = _start(request, form, tools_tasks.convert_volume_job, kind="convert", host=volume.pool.host,
                     pool=volume.pool, volume_name=volume.name, params=form.job_params(), cancellable=True,
                     target_pool=target, target_volume_name=form.cleaned_data["name"])
        if job:
            return redirect(job)
    return render(request, "volumes/image_tool.html", {"op": "convert", "form": form, "volume": volume,
                                                       "pool": volume.pool}, status=400 if form.errors else 200)


@member_required
def image_import(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """An admin imports an image file of the app's machine (from the import roots) into a new volume."""
    pool = _pool(request, pool_pk, "manage")
    form = ImportForm(request.POST or None, pool=pool)
    if request.method == "POST" and form.is_valid():
        job = _start(request, form, tools_tasks.import_image_job, kind="import", host=pool.host, pool=pool,
                     volume_name=form.cleaned_data["name"], params=form.job_params(), cancellable=True)
        if job:
            return redirect(job)
    return render(request, "volumes/image_tool.html", {"op": "import", "form": form, "pool": pool,
                                                       "roots": image_files.import_roots()},
                  status=400 if form.errors else 200)
