"""The upload API's views: an upload is opened, watched, completed or abandoned here; its chunks and holes
arrive through chunk_views.py into a staging file (staging.py), and a job writes the volume (upload_job.py).
Downloads are download_view.py.

The upload API, for browsers (static/js/upload.js) and scripts alike:
  POST   /volumes/uploads/                      create: pool, volume, mode, size[, capacity, confirm]
  GET    /volumes/uploads/<id>/                 what has arrived, to resume
  PUT    /volumes/uploads/<id>/chunks?offset=N  body = bytes (or Content-Range: bytes a-b/size)
  PUT    /volumes/uploads/<id>/chunks?offset=N&hole=L   L bytes of zeros, not sent
  PUT    /volumes/uploads/<id>/chunks           Content-Type: application/vnd.virtstorage.sparse: many
                                                data runs and holes in one body (chunk_frames.py)
  POST   /volumes/uploads/<id>/holes            {"holes": [[offset, length], ...]}: many at once
  POST   /volumes/uploads/<id>/complete         launch the job that writes the volume
  DELETE /volumes/uploads/<id>/                 abandon
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import BadRequest
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import access
from accounts.roles import member_required
from accounts.tokens import accepts_token
from audit.log import record
from jobs import progress, runner
from jobs.models import Job
from pools.models import PoolRemoved, StoragePool
from virtstorage.virt.units import binary_size

from . import relay, staging
from .models import Upload, Volume
from .upload_forms import UploadForm, UploadPageQuery
from .upload_job import truncation_message, upload_volume

# -- Creating an upload ---------------------------------------------------------

def payload(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ValueError(_("The body is not valid JSON: %(error)s") % {"error": exc}) from exc
        if not isinstance(body, dict):
            raise ValueError(_("The body must be a JSON object."))
        return {k: v for k, v in body.items() if v is not None}
    return request.POST.dict()


def json_error(message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({**extra, "error": message}, status=status)


def upload_state(upload: Upload) -> dict:
    """What a client needs to resume or watch an upload."""
    missing = upload.missing()
    return {
        "id": str(upload.pk),
        "url": reverse("volumes:upload", args=[upload.pk]),
        "chunks_url": reverse("volumes:upload_chunks", args=[upload.pk]),
        "holes_url": reverse("volumes:upload_holes", args=[upload.pk]),
        "complete_url": reverse("volumes:upload_complete", args=[upload.pk]),
        "pool": upload.pool_id,
        "volume": upload.volume_name,
        "mode": upload.mode,
        "size": upload.size,
        "capacity": upload.capacity,
        "received": upload.received,
        "received_bytes": upload.received_bytes,
        "hole_bytes": upload.hole_bytes,
        "next_offset": upload.next_offset(),
        "missing": missing[:100],
        "state": upload.state,
        "error": upload.error,
        "job": upload.job_id,
        "job_url": reverse("jobs:detail", args=[upload.job_id]) if upload.job_id else None,
    }


@member_required
@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    """The browser's upload form: into a new volume of a pool, or replacing a volume."""
    query = UploadPageQuery(request.GET)
    if not query.is_valid():
        raise BadRequest("; ".join(f"{field}: {' '.join(errors)}" for field, errors in query.errors.items()))
    volume = None
    if query.cleaned_data["volume"]:
        volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool__host"),
                                   pk=query.cleaned_data["volume"])
        pool = volume.pool
    else:
        pool = get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"),
                                 pk=query.cleaned_data["pool"])
    access.require(request.user, "replace" if volume else "upload", pool)
    return render(request, "volumes/upload.html", {"pool": pool, "volume": volume, "chunk_bytes": 8 * 1024 * 1024,
                                                   "team": UploadForm(user=request.user, pool=pool)["team"]})


@accepts_token
@member_required
@require_POST
def upload_create(request: HttpRequest) -> JsonResponse:
    try:
        form = UploadForm(payload(request), user=request.user)
    except ValueError as exc:
        return json_error(str(exc), 400)
    if not form.is_valid():
        return JsonResponse({"error": _("Please correct the errors."), "errors": form.errors}, status=400)
    try:
        upload, job = start_upload(request, form)
    except runner.JobError as exc:
        return job_refused(exc)
    except StagingRefused as exc:
        return json_error(str(exc), 507)
    return JsonResponse(upload_state(upload) | (_watch(request, job) if job else {}), status=201)


class StagingRefused(Exception):
    """The staging file could not be made (507); nothing was kept."""


def start_upload(request: HttpRequest, form: UploadForm) -> tuple[Upload, Job | None]:
    """A valid UploadForm's upload: its row, its staging file and, into a new volume, its streaming job (None
    when it starts at complete). The page's API and the REST API both open uploads here. Raises StagingRefused or
    JobError, keeping nothing."""
    data = form.cleaned_data
    try:
        with transaction.atomic():
            data["pool"].hold()  # gone since the form was checked: refused as a launch on it would be
            if form.charge is not None:
                form.charge.hold()  # the quota again, under its grant's lock: the upload row reserves from now
            upload = Upload.objects.create(team=form.charge.team if form.charge else None,
                created_by=request.user, pool=data["pool"], volume_name=data["volume"], mode=data["mode"],
                filename=data.get("filename") or "", size=data["size"], capacity=data["capacity"],
                stated_format=data.get("format") or "", force=data["force"], relayed=relay.relayed(data["pool"]),
                streaming=data["mode"] == Upload.Mode.NEW and (relay.relayed(data["pool"])
                                                               or may_stream(request.user)))
    except PoolRemoved as exc:
        raise runner.JobConflict(str(exc)) from exc
    try:
        if not upload.relayed:  # a relayed upload's staging file is made by its job, on the job's machine
            staging.create_staging_file(upload)
    except OSError as exc:
        upload.delete()
        raise StagingRefused(_("The server cannot stage a file of %(size)s: %(error)s. Nothing was kept.")
                             % {"size": binary_size(upload.size), "error": exc.strerror}) from exc
    record("upload.create", request=request, target=upload, detail={"size": upload.size, "mode": upload.mode})
    if not (upload.streaming or upload.relayed):
        return upload, None
    # Into a new volume the job starts now and writes each run of chunks as it arrives. A relayed upload's job
    # starts now in any case: it is what takes the chunks (it writes a volume it replaces at complete only).
    try:
        return upload, launch_upload_job(request, upload)
    except runner.JobError:
        upload.staging_path.unlink(missing_ok=True)
        upload.delete()
        raise


def may_stream(user) -> bool:
    """Whether a new upload of this user may hold a transfer worker while its chunks arrive.

    A streaming job holds its worker process until the last chunk (or UPLOAD_IDLE_SECONDS without one), so
    one user streams at most UPLOAD_STREAMS_PER_USER uploads at once; further uploads are staged and their
    job starts at complete, with every byte there. Another user's upload never waits for one user's."""
    streaming = Upload.objects.filter(created_by=user, streaming=True, completed=False,
                                      job__state__in=Job.ACTIVE_STATES).count()
    return streaming < settings.UPLOAD_STREAMS_PER_USER


def launch_upload_job(request: HttpRequest, upload: Upload) -> Job:
    pool = upload.pool
    job = runner.launch(upload_volume, kind="upload", user=request.user, request=request, host=pool.host, pool=pool,
                        volume_name=upload.volume_name, cancellable=True,
                        params={"upload": str(upload.pk), "size": upload.size, "force": upload.force,
                                **({"team": upload.team_id} if upload.team_id else {})})
    Upload.objects.filter(pk=upload.pk).update(job=job)
    upload.job = job
    return job


def job_refused(exc: runner.JobError, **extra) -> JsonResponse:
    """503 when the queue is down (try later), 409 when another job holds the volume or pool."""
    return json_error(str(exc), 503 if isinstance(exc, runner.QueueUnavailable) else 409, **extra)


def _watch(request: HttpRequest, job: Job) -> dict:
    """Where a client follows the upload's job."""
    return {"events_url": reverse("jobs:events", args=[job.pk]),
            "progress_url": reverse("jobs:progress", args=[job.pk]),
            "watch_html": render_to_string("partials/job_watch.html", {"snap": progress.snapshot(job)},
                                           request=request)}


def own_upload(request: HttpRequest, pk) -> Upload:
    upload = get_object_or_404(Upload.objects.visible_to(request.user).select_related("pool", "job"), pk=pk)
    upload.settle()
    return upload


@accepts_token
@member_required
@require_http_methods(["GET", "DELETE"])
def upload_detail(request: HttpRequest, pk) -> JsonResponse:
    upload = own_upload(request, pk)
    if request.method == "DELETE":
        if refusal := abandon(request, upload):
            return json_error(refusal, 409)
        return JsonResponse({"deleted": str(pk)})
    return JsonResponse(upload_state(upload))


def abandon(request: HttpRequest, upload: Upload) -> str:
    """Abandon the upload and free its staging space; the refusal when it is being written ("" when done)."""
    if upload.state == Upload.State.SENDING:
        return _("The upload is being written to the volume; cancel its job instead.")
    record("upload.abandon", request=request, target=upload, detail={"received_bytes": upload.received_bytes})
    if upload.relayed:  # its staging file is the job's, on the job's machine: the job removes it
        relay.discard(upload.pk)
    else:
        upload.staging_path.unlink(missing_ok=True)
    upload_pk = upload.pk
    if upload.job_id:  # a streaming job: it stops, removes its new volume (and, relayed, sees the upload gone)
        # Asked before the row goes: a job that finds the upload missing then always finds the cancel too.
        Job.objects.filter(pk=upload.job_id, cancellable=True).update(cancel_requested=True)
    upload.delete()
    if upload.job_id:
        staging.announce(upload_pk)
    return ""


@accepts_token
@member_required
@require_POST
def upload_complete(request: HttpRequest, pk) -> JsonResponse:
    """The client has sent every chunk: the job (already streaming, or started now) finishes the volume."""
    upload = own_upload(request, pk)
    if upload.state in (Upload.State.SENDING, Upload.State.DONE) and upload.job_id:  # settled: the job lives or won
        # Said twice (a retry after a lost response), or a streaming job finished first: same answer.
        return JsonResponse(upload_state(upload) | _watch(request, upload.job), status=202)
    job = upload.job if upload.job_id and upload.job.is_active else None
    if job is not None:  # streaming: the job sees `completed` and finishes, or fails on a missing range
        Upload.objects.filter(pk=upload.pk).update(completed=True)
        staging.announce(upload.pk)
    else:
        # Saved before the job can read the row (a truncated upload fails it at once).
        Upload.objects.filter(pk=upload.pk).update(completed=True, state=Upload.State.SENDING, error="")
        try:
            job = launch_upload_job(request, upload)
        except runner.JobError as exc:
            Upload.objects.filter(pk=upload.pk).update(state=upload.state)
            upload.refresh_from_db()
            return job_refused(exc, **upload_state(upload))
    upload.refresh_from_db()
    state = upload_state(upload)
    if upload.missing():
        # The job fails, saying so; the upload stays, to be resumed and completed again.
        state["warning"] = truncation_message(upload)
    return JsonResponse(state | _watch(request, job), status=202)
