"""The upload API's data: chunk PUTs (one range of the file, or many runs and holes framed in one body:
chunk_frames.py) and declared holes, into the upload's staging file (staging.py) or, for a host whose worker
takes its uploads, onto the relay (relay.py). The rest of the API is upload_views.py.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.roles import member_required
from accounts.tokens import accepts_token
from jobs import runner
from virtstorage.virt import sparse_format

from . import chunk_frames, relay, staging
from .models import Upload
from .upload_views import job_refused, json_error, launch_upload_job, own_upload, payload, upload_state

MAX_HOLES_PER_REQUEST = 100_000
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _chunk_range(request: HttpRequest, upload: Upload) -> tuple[int, int, bool]:
    """(offset, length, is_hole) of a chunk request; ValueError with the reason when wrong."""
    header = request.headers.get("Content-Range", "")
    hole = request.GET.get("hole")
    if header:
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if not match:
            raise ValueError(_("Content-Range must look like 'bytes 0-1048575/8589934592'."))
        start, last, total = int(match[1]), int(match[2]), match[3]
        if total != "*" and int(total) != upload.size:
            raise ValueError(_("Content-Range says the file has %(total)s bytes; this upload is of %(size)s.")
                             % {"total": total, "size": upload.size})
        if "offset" in request.GET and request.GET["offset"] != str(start):
            raise ValueError(_("offset and Content-Range disagree."))
        offset, length = start, last - start + 1
        if length <= 0:
            raise ValueError(_("Content-Range ends before it starts."))
    else:
        try:
            offset = int(request.GET["offset"])
        except (KeyError, ValueError) as exc:
            raise ValueError(_("Give ?offset=N (a byte offset) or a Content-Range header.")) from exc
        if hole is not None:
            try:
                length = int(hole)
            except ValueError as exc:
                raise ValueError(_("hole must be a number of bytes.")) from exc
        else:
            try:
                length = int(request.headers.get("Content-Length") or "")
            except ValueError as exc:
                raise ValueError(_("A chunk needs a Content-Length.")) from exc
    if offset < 0 or length <= 0:
        raise ValueError(_("offset must be >= 0 and the chunk must not be empty."))
    if offset + length > upload.size:
        raise ValueError(_("bytes %(first)s-%(last)s go past the end of the file (%(size)s bytes).")
                         % {"first": offset, "last": offset + length - 1, "size": upload.size})
    if hole is not None and int(request.headers.get("Content-Length") or 0):
        raise ValueError(_("A hole has no body: send ?hole=LENGTH with an empty body."))
    return offset, length, hole is not None


def _takes_data(upload: Upload) -> JsonResponse | None:
    """The refusal when the upload takes no more data, else None."""
    if upload.state not in (Upload.State.RECEIVING, Upload.State.FAILED):
        return json_error(_("This upload is %(state)s: it takes no more data.")
                      % {"state": upload.get_state_display().lower()}, 409)
    if not upload.relayed and not upload.staging_path.exists():
        return json_error(_("The staging file of this upload is gone: start a new upload."), 410)
    return None


@accepts_token
@member_required
@require_http_methods(["PUT"])
def upload_chunk(request: HttpRequest, pk) -> JsonResponse:
    """One range of the file (Content-Range or ?offset=, or ?hole= for zeros not sent), or many (framed)."""
    upload = own_upload(request, pk)
    if refusal := _takes_data(upload):
        return refusal
    if request.content_type == sparse_format.MIME_TYPE:
        return _framed_chunk(request, upload)
    try:
        offset, length, hole = _chunk_range(request, upload)
    except ValueError as exc:
        return json_error(str(exc), 400, **upload_state(upload))
    if upload.relayed and (refusal := _relay_ready(request, upload, [(offset, offset + length)] if hole else [])):
        return refusal
    if not hole:
        if not upload.relayed and (refusal := staging.no_room_for(length)):
            return json_error(refusal, 507)
        write = relay.push_body if upload.relayed else staging.write_body
        try:
            got = write(staging.body_blocks(request), upload, offset, length)
        except ValueError as exc:
            return json_error(str(exc), 400, **upload_state(upload))
        except relay.BufferFull as exc:
            return _buffer_full(exc, upload)
        if got != length:
            upload.refresh_from_db()
            return json_error(_("The chunk is truncated: %(got)s of %(length)s bytes arrived (those are kept); "
                                "send the rest again.") % {"got": got, "length": length}, 400, **upload_state(upload))
    span = [(offset, offset + length)]
    upload = staging.record(upload, holes=span) if hole else staging.record(upload, span)
    return JsonResponse(upload_state(upload))


def _framed_chunk(request: HttpRequest, upload: Upload) -> JsonResponse:
    """Many data runs and holes in one body (chunk_frames); a malformed or cut body keeps what arrived before."""
    if upload.relayed and (refusal := _relay_ready(request, upload, [])):
        return refusal
    if not upload.relayed and (refusal := staging.no_room_for(int(request.headers.get("Content-Length") or 0))):
        return json_error(refusal, 507)
    try:
        upload = chunk_frames.receive(staging.body_blocks(request), upload)
    except ValueError as exc:  # sparse_format.FormatError, chunk_frames.FramesCut
        upload.refresh_from_db()
        return json_error(str(exc), 400, **upload_state(upload))
    except relay.BufferFull as exc:
        return _buffer_full(exc, upload)
    return JsonResponse(upload_state(upload))


@accepts_token
@member_required
@require_POST
def upload_holes(request: HttpRequest, pk) -> JsonResponse:
    """Declare many ranges of zeros at once: {"holes": [[offset, length], ...]} (a sparse image's
    holes in one request instead of one each)."""
    upload = own_upload(request, pk)
    if refusal := _takes_data(upload):
        return refusal
    try:
        holes = payload(request).get("holes")
        if not isinstance(holes, list) or len(holes) > MAX_HOLES_PER_REQUEST:
            raise ValueError(_('Send {"holes": [[offset, length], ...]}, at most %(max)s of them.')
                             % {"max": MAX_HOLES_PER_REQUEST})
        ranges = []
        for hole in holes:
            if not (isinstance(hole, list) and len(hole) == 2 and all(type(n) is int for n in hole)):
                raise ValueError(_("Each hole is [offset, length] in bytes, not %(hole)r.") % {"hole": hole})
            offset, length = hole
            if offset < 0 or length <= 0 or offset + length > upload.size:
                raise ValueError(_("The hole [%(offset)s, %(length)s] is empty or outside the file (%(size)s bytes).")
                                 % {"offset": offset, "length": length, "size": upload.size})
            ranges.append((offset, offset + length))
    except ValueError as exc:
        return json_error(str(exc), 400, **upload_state(upload))
    if upload.relayed and (refusal := _relay_ready(request, upload, ranges)):
        return refusal
    return JsonResponse(upload_state(staging.record(upload, holes=ranges)))


def _relay_ready(request: HttpRequest, upload: Upload, zeros: list[tuple[int, int]]) -> JsonResponse | None:
    """A relayed upload's chunks need its job, which takes them: after a job that failed (a resume) a new one
    starts with the next chunk. Then the zeros go onto the relay. The refusal, else None."""
    if not (upload.job_id and upload.job.is_active):
        Upload.objects.filter(pk=upload.pk).update(completed=False, state=Upload.State.RECEIVING, error="")
        try:
            launch_upload_job(request, upload)
        except runner.JobError as exc:
            upload.refresh_from_db()
            if not (isinstance(exc, runner.JobConflict) and upload.job_id and upload.job.is_active):
                return job_refused(exc, **upload_state(upload))  # else a chunk sent alongside started it
    try:
        relay.push_zeros(upload, zeros)
    except relay.BufferFull as exc:
        return _buffer_full(exc, upload)
    return None


def _buffer_full(exc: relay.BufferFull, upload: Upload) -> JsonResponse:
    """503 with Retry-After: the clients send the chunk again, by then the host's worker has taken some."""
    upload.refresh_from_db()
    response = json_error(str(exc), 503, **upload_state(upload))
    response["Retry-After"] = str(exc.retry_after)
    return response
