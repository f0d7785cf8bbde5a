"""Uploads: chunks into a staging file, written into the volume by a job (downloads: downloads.py).

The upload API, for browsers (static/js/upload.js) and scripts alike:
  POST   /volumes/uploads/                      create: pool, volume, mode, size[, capacity, confirm]
  GET    /volumes/uploads/<id>/                 what has arrived, to resume
  PUT    /volumes/uploads/<id>/chunks?offset=N  body = bytes (or Content-Range: bytes a-b/size)
  PUT    /volumes/uploads/<id>/chunks?offset=N&hole=L   L bytes of zeros, not sent
  POST   /volumes/uploads/<id>/holes            {"holes": [[offset, length], ...]}: many at once
  POST   /volumes/uploads/<id>/complete         launch the job that writes the volume
  DELETE /volumes/uploads/<id>/                 abandon
  GET    /volumes/<pk>/download[?sparse=1]      the volume's bytes
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from django import forms
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
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.accounts.roles import is_admin, member_required
from virtstorage.jobs import progress, runner
from virtstorage.jobs.models import Job
from virtstorage.templatetags.sizes import binary_size

from .asgi_upload import BODY_STREAM_KEY, BodyAborted
from .forms import FORMAT_CHOICES, VolumeNameField
from .models import Upload, Volume, merge_range
from .safety import refuse_unsafe
from .sizes import parse_size
from .transfer_tasks import truncation_message, upload_volume

BODY_PIECE = 1024 * 1024  # the request body is copied to the staging file in pieces this big
RECORD_BYTES = 16 * 1024 * 1024  # a chunk's bytes are recorded as received this often while it arrives
MAX_HOLES_PER_REQUEST = 100_000
_ZERO_PIECE = bytes(BODY_PIECE)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


# -- Creating an upload ---------------------------------------------------------

class UploadPageQuery(forms.Form):
    """The upload page's query: ?pool=N for a new volume, or ?volume=N to replace one."""

    pool = forms.IntegerField(min_value=1, required=False)
    volume = forms.IntegerField(min_value=1, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("pool") and not data.get("volume"):
            raise forms.ValidationError("Give ?pool=N (a new volume) or ?volume=N (to replace it).")
        return data


class UploadForm(forms.Form):
    pool = forms.IntegerField(min_value=1)
    volume = VolumeNameField()
    mode = forms.ChoiceField(choices=Upload.Mode.choices, initial=Upload.Mode.NEW)
    size = forms.CharField(help_text="Bytes of the file.")
    capacity = forms.CharField(required=False, help_text="Virtual size of a new raw volume; default: the file's size.")
    format = forms.ChoiceField(choices=[("", "Read from the file's header"), *FORMAT_CHOICES], required=False,
                               help_text="What the file is; the file's header must agree.")
    confirm = forms.CharField(required=False, strip=False, help_text="To replace a volume, type its name.")
    force = forms.BooleanField(required=False, help_text="Replace even if a virtual machine uses it (admins only).")
    filename = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_size(self) -> int:
        try:
            size = parse_size(self.cleaned_data["size"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if size <= 0:
            raise forms.ValidationError("The file is empty: there is nothing to upload.")
        return size

    def clean_capacity(self) -> int | None:
        text = self.cleaned_data.get("capacity")
        if text in (None, ""):
            return None
        try:
            return parse_size(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        pool = StoragePool.objects.select_related("host").filter(pk=data["pool"]).first()
        if pool is None:
            self.add_error("pool", "No such pool.")
            return data
        if not pool.is_active or not pool.host.enabled:
            self.add_error("pool", f"Pool {pool.name} is not running: start it before uploading into it.")
            return data
        data["pool"] = pool
        if data["mode"] == Upload.Mode.EXISTING:
            self._clean_replace(data, pool)
        else:
            self._clean_new(data, pool)
        return data

    def _clean_replace(self, data: dict, pool: StoragePool) -> None:
        name, size = data["volume"], data["size"]
        existing = Volume.objects.filter(pool=pool, name=name).first()
        if existing is None:
            self.add_error("volume", f"Pool {pool.name} has no volume {name}.")
            return
        try:
            refuse_unsafe(existing)
        except forms.ValidationError as exc:
            self.add_error("volume", exc)
        if size > existing.capacity:
            self.add_error("size", f"The file ({binary_size(size)}, {size} bytes) is larger than volume {name} "
                                   f"({binary_size(existing.capacity)}, {existing.capacity} bytes).")
        if data.get("confirm") != name:
            self.add_error("confirm", f"Replacing {name} erases what it holds: type its name to confirm.")
        data["force"] = bool(data.get("force")) and is_admin(self.user)
        users = sorted({disk.domain for disk in existing.users()})  # as of the last sync; the job asks libvirt
        if users and not data["force"]:
            self.add_error("volume", f"Refused to replace {name}: it is a disk of the virtual machine(s) "
                                     f"{', '.join(users)}. Remove the disk first, or ask an admin to force it.")
        data["capacity"] = existing.capacity if existing.format == "raw" else size

    def _clean_new(self, data: dict, pool: StoragePool) -> None:
        name, size = data["volume"], data["size"]
        data["force"] = False
        if Volume.objects.filter(pool=pool, name=name).exists():
            self.add_error("volume", f"Pool {pool.name} already has a volume {name}: choose another name, "
                                     "or replace it.")
            return
        capacity = data.get("capacity") or size
        if capacity < size:
            self.add_error("capacity", f"The capacity ({binary_size(capacity)}) is smaller than the file "
                                       f"({binary_size(size)}).")
            return
        try:
            check_volume_fits(pool, capacity=capacity, allocation=0)
        except PolicyViolation as exc:
            self.add_error("capacity" if data.get("capacity") else "size", str(exc))
        data["capacity"] = capacity


def _payload(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ValueError(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError("The body must be a JSON object.")
        return {k: v for k, v in body.items() if v is not None}
    return request.POST.dict()


def _error(message: str, status: int, **extra) -> JsonResponse:
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
        volume = get_object_or_404(Volume.objects.select_related("pool__host"), pk=query.cleaned_data["volume"])
        pool = volume.pool
    else:
        pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=query.cleaned_data["pool"])
    return render(request, "volumes/upload.html", {"pool": pool, "volume": volume,
                                                   "chunk_bytes": 8 * 1024 * 1024})


@member_required
@require_POST
def upload_create(request: HttpRequest) -> JsonResponse:
    try:
        form = UploadForm(_payload(request), user=request.user)
    except ValueError as exc:
        return _error(str(exc), 400)
    if not form.is_valid():
        return JsonResponse({"error": "Please correct the errors.", "errors": form.errors}, status=400)
    data = form.cleaned_data
    upload = Upload.objects.create(
        created_by=request.user, pool=data["pool"], volume_name=data["volume"], mode=data["mode"],
        filename=data.get("filename") or "", size=data["size"], capacity=data["capacity"],
        stated_format=data.get("format") or "", force=data["force"],
        streaming=data["mode"] == Upload.Mode.NEW and may_stream(request.user))
    try:
        create_staging_file(upload)
    except OSError as exc:
        upload.delete()
        return _error(f"The server cannot stage a file of {binary_size(upload.size)}: {exc.strerror}. "
                      "Nothing was kept.", 507)
    state = upload_state(upload)
    if upload.streaming:
        # Into a new volume the job starts now and writes each run of chunks as it arrives.
        try:
            job = _launch_upload_job(request, upload)
        except runner.JobError as exc:
            upload.staging_path.unlink(missing_ok=True)
            upload.delete()
            return _job_refused(exc)
        state = upload_state(upload) | _watch(request, job)
    return JsonResponse(state, status=201)


def create_staging_file(upload: Upload) -> None:
    """A sparse file of the upload's size, readable by this user only: ranges never written (holes) read as
    zeros and cost no disk."""
    path = upload.staging_path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.ftruncate(fd, upload.size)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def may_stream(user) -> bool:
    """Whether a new upload of this user may hold a transfer worker while its chunks arrive.

    A streaming job holds its worker process until the last chunk (or UPLOAD_IDLE_SECONDS without one), so
    one user streams at most UPLOAD_STREAMS_PER_USER uploads at once; further uploads are staged and their
    job starts at complete, with every byte there. Another user's upload never waits for one user's."""
    streaming = Upload.objects.filter(created_by=user, streaming=True, completed=False,
                                      job__state__in=Job.ACTIVE_STATES).count()
    return streaming < settings.UPLOAD_STREAMS_PER_USER


def _launch_upload_job(request: HttpRequest, upload: Upload) -> Job:
    pool = upload.pool
    job = runner.launch(upload_volume, kind="upload", user=request.user, host=pool.host, pool=pool,
                        volume_name=upload.volume_name, cancellable=True,
                        params={"upload": str(upload.pk), "size": upload.size, "force": upload.force})
    Upload.objects.filter(pk=upload.pk).update(job=job)
    upload.job = job
    return job


def _job_refused(exc: runner.JobError, **extra) -> JsonResponse:
    """503 when the queue is down (try later), 409 when another job holds the volume or pool."""
    return _error(str(exc), 503 if isinstance(exc, runner.QueueUnavailable) else 409, **extra)


def _watch(request: HttpRequest, job: Job) -> dict:
    """Where a client follows the upload's job."""
    return {"events_url": reverse("jobs:events", args=[job.pk]),
            "progress_url": reverse("jobs:progress", args=[job.pk]),
            "watch_html": render_to_string("partials/job_watch.html", {"snap": progress.snapshot(job)},
                                           request=request)}


def _own_upload(request: HttpRequest, pk) -> Upload:
    upload = get_object_or_404(Upload.objects.visible_to(request.user).select_related("pool", "job"), pk=pk)
    upload.settle()
    return upload


@member_required
@require_http_methods(["GET", "DELETE"])
def upload_detail(request: HttpRequest, pk) -> JsonResponse:
    upload = _own_upload(request, pk)
    if request.method == "DELETE":
        if upload.state == Upload.State.SENDING:
            return _error("The upload is being written to the volume; cancel its job instead.", 409)
        if upload.job_id:  # a streaming job waiting for chunks: it stops and removes its new volume
            Job.objects.filter(pk=upload.job_id, cancellable=True).update(cancel_requested=True)
        upload.staging_path.unlink(missing_ok=True)
        upload.delete()
        return JsonResponse({"deleted": str(pk)})
    return JsonResponse(upload_state(upload))


def _chunk_range(request: HttpRequest, upload: Upload) -> tuple[int, int, bool]:
    """(offset, length, is_hole) of a chunk request; ValueError with the reason when wrong."""
    header = request.headers.get("Content-Range", "")
    hole = request.GET.get("hole")
    if header:
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if not match:
            raise ValueError("Content-Range must look like 'bytes 0-1048575/8589934592'.")
        start, last, total = int(match[1]), int(match[2]), match[3]
        if total != "*" and int(total) != upload.size:
            raise ValueError(f"Content-Range says the file has {total} bytes; this upload is of {upload.size}.")
        if "offset" in request.GET and request.GET["offset"] != str(start):
            raise ValueError("offset and Content-Range disagree.")
        offset, length = start, last - start + 1
        if length <= 0:
            raise ValueError("Content-Range ends before it starts.")
    else:
        try:
            offset = int(request.GET["offset"])
        except (KeyError, ValueError) as exc:
            raise ValueError("Give ?offset=N (a byte offset) or a Content-Range header.") from exc
        if hole is not None:
            try:
                length = int(hole)
            except ValueError as exc:
                raise ValueError("hole must be a number of bytes.") from exc
        else:
            try:
                length = int(request.headers.get("Content-Length") or "")
            except ValueError as exc:
                raise ValueError("A chunk needs a Content-Length.") from exc
    if offset < 0 or length <= 0:
        raise ValueError("offset must be >= 0 and the chunk must not be empty.")
    if offset + length > upload.size:
        raise ValueError(f"bytes {offset}-{offset + length - 1} go past the end of the file ({upload.size} bytes).")
    if hole is not None and int(request.headers.get("Content-Length") or 0):
        raise ValueError("A hole has no body: send ?hole=LENGTH with an empty body.")
    return offset, length, hole is not None


def _body_blocks(request: HttpRequest) -> Iterator[list[bytes]]:
    """The request body in blocks of pieces: streamed from the connection when the ASGI wrapper
    (asgi_upload) left it there, else read from Django's spooled body (tests, WSGI)."""
    stream = getattr(request, "scope", {}).get(BODY_STREAM_KEY)
    if stream is None:
        while piece := request.read(BODY_PIECE):
            yield [piece]
        return
    while block := stream.next_block():
        yield block


def _all_zeros(piece: bytes) -> bool:
    # startswith compares with memcmp; slices of a memoryview copy nothing (of bytes they would).
    view = memoryview(piece)
    return all(_ZERO_PIECE.startswith(view[i:i + BODY_PIECE]) for i in range(0, len(piece), BODY_PIECE))


def _write_body(request: HttpRequest, upload: Upload, offset: int, length: int, fresh: bool) -> int:
    """Copy the body into the staging file at offset; returns bytes read (compare to length).

    Pieces of zeros in ranges not received before are skipped: the staging file is sparse,
    so they already read as zeros and a script's dense upload still stays thin. Every
    RECORD_BYTES the bytes written so far are recorded as received: a streaming job follows
    a large chunk while it arrives, and a chunk cut short keeps what did arrive.
    """
    fd = os.open(upload.staging_path, os.O_WRONLY)
    recorded = pos = offset
    end = offset + length
    try:
        for pieces in _body_blocks(request):
            size = sum(len(piece) for piece in pieces)
            if pos + size > end:
                raise ValueError(f"The body holds more than the {length} bytes announced.")
            if not (fresh and all(_all_zeros(piece) for piece in pieces)):
                written = os.pwritev(fd, pieces, pos)  # one system call per block, no copy to join pieces
                if written < size:  # a full disk: writing the rest raises the error
                    os.pwrite(fd, b"".join(pieces)[written:], pos + written)
            pos += size
            if pos - recorded >= RECORD_BYTES and pos < end:
                _record(upload, [(recorded, pos)])
                recorded = pos
    except BodyAborted:
        pass  # the client is gone; the short count says so
    finally:
        os.close(fd)
    if recorded < pos < end:
        _record(upload, [(recorded, pos)])
    return pos - offset


def _record(upload: Upload, ranges: list[tuple[int, int]], *, holes: bool = False) -> Upload:
    """Add [start, end) ranges to what the upload has received (holes: declared zeros, not sent)."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        before = upload.received_bytes
        received = upload.received
        for start, end in ranges:
            received = merge_range(received, start, end)
        upload.received = received
        upload.received_bytes = sum(hi - lo for lo, hi in received)
        if holes:
            upload.hole_bytes += upload.received_bytes - before
        upload.state = Upload.State.RECEIVING
        upload.save(update_fields=["received", "received_bytes", "hole_bytes", "state", "updated_at"])
    return upload


def _refuse_if_no_room(length: int) -> JsonResponse | None:
    """507 when writing length bytes would leave the staging file system less than its reserve."""
    free = shutil.disk_usage(Path(settings.VAR_DIR) / "uploads").free
    if free - length >= settings.UPLOAD_STAGING_RESERVE_BYTES:
        return None
    return _error(f"The server has {binary_size(free)} free for uploads and keeps "
                  f"{binary_size(settings.UPLOAD_STAGING_RESERVE_BYTES)} in reserve, so it cannot take this "
                  f"{binary_size(length)} chunk. Nothing was written; ask an admin to free space, then resume.", 507)


def _takes_data(upload: Upload) -> JsonResponse | None:
    """The refusal when the upload takes no more data, else None."""
    if upload.state not in (Upload.State.RECEIVING, Upload.State.FAILED):
        return _error(f"This upload is {upload.get_state_display().lower()}: it takes no more data.", 409)
    if not upload.staging_path.exists():
        return _error("The staging file of this upload is gone: start a new upload.", 410)
    return None


@member_required
@require_http_methods(["PUT"])
def upload_chunk(request: HttpRequest, pk) -> JsonResponse:
    upload = _own_upload(request, pk)
    if refusal := _takes_data(upload):
        return refusal
    try:
        offset, length, hole = _chunk_range(request, upload)
    except ValueError as exc:
        return _error(str(exc), 400, **upload_state(upload))
    if not hole:
        if refusal := _refuse_if_no_room(length):
            return refusal
        fresh = not any(lo < offset + length and offset < hi for lo, hi in upload.received)
        try:
            got = _write_body(request, upload, offset, length, fresh)
        except ValueError as exc:
            return _error(str(exc), 400, **upload_state(upload))
        if got != length:
            upload.refresh_from_db()
            return _error(f"The chunk is truncated: {got} of {length} bytes arrived (those are kept); "
                          "send the rest again.", 400, **upload_state(upload))
    upload = _record(upload, [(offset, offset + length)], holes=hole)
    return JsonResponse(upload_state(upload))


@member_required
@require_POST
def upload_holes(request: HttpRequest, pk) -> JsonResponse:
    """Declare many ranges of zeros at once: {"holes": [[offset, length], ...]} (a sparse image's
    holes in one request instead of one each)."""
    upload = _own_upload(request, pk)
    if refusal := _takes_data(upload):
        return refusal
    try:
        holes = _payload(request).get("holes")
        if not isinstance(holes, list) or len(holes) > MAX_HOLES_PER_REQUEST:
            raise ValueError(f"Send {{\"holes\": [[offset, length], ...]}}, at most {MAX_HOLES_PER_REQUEST} of them.")
        ranges = []
        for hole in holes:
            if not (isinstance(hole, list) and len(hole) == 2 and all(type(n) is int for n in hole)):
                raise ValueError(f"Each hole is [offset, length] in bytes, not {hole!r}.")
            offset, length = hole
            if offset < 0 or length <= 0 or offset + length > upload.size:
                raise ValueError(f"The hole [{offset}, {length}] is empty or outside the file ({upload.size} bytes).")
            ranges.append((offset, offset + length))
    except ValueError as exc:
        return _error(str(exc), 400, **upload_state(upload))
    return JsonResponse(upload_state(_record(upload, ranges, holes=True)))


@member_required
@require_POST
def upload_complete(request: HttpRequest, pk) -> JsonResponse:
    """The client has sent every chunk: the job (already streaming, or started now) finishes the volume."""
    upload = _own_upload(request, pk)
    if upload.state in (Upload.State.SENDING, Upload.State.DONE) and upload.job_id:  # settled: the job lives or won
        # Said twice (a retry after a lost response), or a streaming job finished first: same answer.
        return JsonResponse(upload_state(upload) | _watch(request, upload.job), status=202)
    job = upload.job if upload.job_id and upload.job.is_active else None
    if job is not None:  # streaming: the job sees `completed` and finishes, or fails on a missing range
        Upload.objects.filter(pk=upload.pk).update(completed=True)
    else:
        # Saved before the job can read the row (a truncated upload fails it at once).
        Upload.objects.filter(pk=upload.pk).update(completed=True, state=Upload.State.SENDING, error="")
        try:
            job = _launch_upload_job(request, upload)
        except runner.JobError as exc:
            Upload.objects.filter(pk=upload.pk).update(state=upload.state)
            upload.refresh_from_db()
            return _job_refused(exc, **upload_state(upload))
    upload.refresh_from_db()
    state = upload_state(upload)
    if upload.missing():
        # The job fails, saying so; the upload stays, to be resumed and completed again.
        state["warning"] = truncation_message(upload)
    return JsonResponse(state | _watch(request, job), status=202)
