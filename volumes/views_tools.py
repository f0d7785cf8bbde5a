"""Views of the image tools: the volume page's Image panel (qemu-img info), and check, convert and import.

The panel is fetched by htmx after the volume page has loaded; it shows the report of the volume's last info
job (info_job: qemu-img info of the files the image check passed, on a host that is this machine) and never
runs qemu-img or asks libvirt itself. Info, check, convert and import are jobs (info_job, tools_tasks).
"""

from __future__ import annotations

import functools

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import access
from accounts.roles import member_required
from jobs import progress
from jobs.models import Job
from jobs.runner import JobError

from . import image_files, info_job, tools_ops
from .models import Volume
from .tools_forms import ConvertForm, ImportForm
from .views_ops import _pool, _start, _volume


def _report(request: HttpRequest, volume: Volume) -> dict:
    """The qemu-img side of the panel: the info job reading it now, else the last one's report (or why it has
    none), else the first reading to start (auto_read)."""
    jobs = info_job.info_jobs(volume)
    if reading := jobs.active().first():
        return {"reading": reading, "snap": progress.snapshot(reading)}
    last = jobs.first()
    if last is None:
        return {"auto_read": True}
    context = {"report_job": last, "report_visible": Job.objects.visible_to(request.user).filter(pk=last.pk).exists()}
    if last.state != Job.State.SUCCEEDED or "report" not in last.params:
        key = "read_refused" if last.params.get("refused") else "read_failed"
        return {**context, key: last.error or last.get_state_display()}
    # A later sync saw other sizes than libvirt gave when qemu-img read it: the image changed since. (Every
    # sync is later; only a change of size or disk use says the report is out of date.)
    read = last.params["report"].get("live", {})
    listed = volume.listed_at
    stale = bool(listed and last.started_at and listed > last.started_at
                 and (volume.capacity, volume.allocation) != (read.get("capacity"), read.get("allocation")))
    return {**context, **last.params["report"], "stale": stale}


def _panel(request: HttpRequest, volume: Volume, **extra) -> HttpResponse:
    context = {"volume": volume, "pool": volume.pool, "may_use": access.may(request.user, "clone", volume.pool),
               "last_check": Job.objects.visible_to(request.user).filter(kind="check", pool=volume.pool,
                                                                        volume_name=volume.name).first(),
               **extra}
    context.update(tools_ops.info_refusal(volume) or _report(request, volume))
    context["image_format"] = (context.get("info") or {}).get("format") or volume.recorded_format or volume.format
    return render(request, "volumes/_image_panel.html", context)


@member_required
@require_GET
def image_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The Image panel of the volume page (htmx): the last qemu-img report beside libvirt's numbers, the
    provisioning, the tools. Shown first with no report, it starts the first reading (a POST to image_info)."""
    return _panel(request, _volume(request, pk, "view"))


@require_POST
@member_required
def image_info(request: HttpRequest, pk: int) -> HttpResponse:
    """Read the volume with qemu-img info (the info job), unless one reads it already; htmx gets the panel, which
    follows the job and reloads itself with the report when it ends."""
    volume = _volume(request, pk, "view")
    job, error = info_job.info_jobs(volume).active().first(), ""
    if job is None and not tools_ops.info_refusal(volume):
        try:
            job = info_job.start_info(volume, user=request.user, request=request)
        except JobError as exc:
            error = str(exc)
    if request.htmx:
        return _panel(request, volume, launch_error=error)
    if error:
        messages.error(request, error)
    return redirect(job if job is not None and job.created_by_id == request.user.pk else volume)


@require_POST
@member_required
def image_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Start qemu-img check of a qcow2 volume (read only)."""
    volume = _volume(request, pk, "clone")
    if refusal := tools_ops.check_refusal(volume):
        messages.error(request, _("Refused: %(reason)s") % {"reason": refusal})
        return redirect(volume)
    try:
        job = tools_ops.start(tools_ops.check_job(volume), user=request.user, request=request)
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
        job = _start(request, form, functools.partial(tools_ops.start, tools_ops.convert_job(volume, form)))
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
        job = _start(request, form, functools.partial(tools_ops.start, tools_ops.import_job(pool, form)))
        if job:
            return redirect(job)
    return render(request, "volumes/image_tool.html", {"op": "import", "form": form, "pool": pool,
                                                       "roots": image_files.import_roots()},
                  status=400 if form.errors else 200)
