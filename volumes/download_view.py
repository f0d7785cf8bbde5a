"""Downloads: a volume streamed from libvirt to the client in constant memory, recorded as a job."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection as db_connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import translation
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from accounts import access
from accounts.roles import is_member
from accounts.tokens import accepts_token
from jobs import runner
from jobs.models import Job
from virtstorage.virt import VirtError, downloads, sparse_format
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.units import binary_size

from . import download_relay
from .download_reader import Unsatisfiable, open_checked
from .models import Volume

DOWNLOAD_REPORT_SECONDS = 0.2
DOWNLOAD_CHECK_SECONDS = 1.0
DOWNLOAD_BLOCK_BYTES = 1024 * 1024  # one response message per block
DOWNLOAD_QUEUE_BLOCKS = 4  # read ahead of the client by at most this many blocks
# The server iterates a response's body as soon as it has sent the headers. If the client leaves
# before that, the body never starts and nothing tells the view: its pump gives up after this.
BODY_START_SECONDS = 10.0


# -- Download -------------------------------------------------------------------

def _start_download(request, user, volume: Volume, sparse: bool, framed: bool) -> runner.JobContext:
    params: dict[str, object] = {"sparse": sparse}
    if framed:
        params["format"] = "sparse"
    return runner.start_inline(kind="download", user=user, host=volume.pool.host, pool=volume.pool,
                               volume_name=volume.name, params=params, cancellable=True, request=request)


def _downloadable(user, pk: int) -> Volume:
    """The volume, if the user may see it (404) and download from its pool (403)."""
    volume = get_object_or_404(Volume.objects.visible_to(user).select_related("pool__host"), pk=pk)
    access.require(user, "download", volume.pool)
    return volume


def _open_here(volume: Volume, **how) -> tuple[downloads.Reader, str]:
    """download_reader.open_checked in a thread of its own, whose database connection it closes."""
    try:
        return open_checked(volume.pool.host, volume.pool.name, volume.name, **how)
    finally:
        db_connection.close()


def _cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


class _Cancelled(Exception):
    """The owner cancelled the download job."""


class _Abandoned(Exception):
    """The response's body did not start in time, or stopped taking blocks: the client left."""


class _DownloadPump:
    """One thread per download reads the volume ahead into a small bounded queue for the response.

    One long-lived reader thread (not a thread-pool call per block) keeps the memory of a download
    to a few blocks: pool threads each keep a malloc arena full of freed multi-MiB buffers. The
    thread also reports progress, heartbeats and checks for a cancel, so the response only sends.
    """

    def __init__(self, ctx: runner.JobContext, reader: downloads.Reader,
                 source: downloads.Reader | downloads.SparseEncoder) -> None:
        self.ctx, self.reader, self.source = ctx, reader, source
        self.queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._slots = threading.Semaphore(DOWNLOAD_QUEUE_BLOCKS)
        self._loop = asyncio.get_running_loop()
        self.stop = threading.Event()
        self.begun = False  # the response started its body (whose end then closes the download)
        self._ending = threading.Lock()
        self._ended = False
        self.thread = threading.Thread(target=self._run, name=f"download-{ctx.job.pk}", daemon=True)
        self.language = translation.get_language()  # the thread's messages are in the request's language

    def start(self) -> None:
        self.thread.start()

    def claim_end(self) -> bool:
        """True for the first caller only: the download is ended (job, streams) exactly once."""
        with self._ending:
            first, self._ended = not self._ended, True
            return first

    async def get(self) -> bytes:
        """The next block (b"" at the end); raises what stopped the reader."""
        item = await self.queue.get()
        self._slots.release()
        if isinstance(item, BaseException):
            raise item
        return item

    def _gone(self, idle: float) -> str | None:
        """Why to give up on a client that has taken no block for `idle` seconds, or None.

        A body that never started means the client left before it; one that stopped taking blocks
        means it left or stalled (granian sometimes never ends a response whose client hung up).
        """
        with translation.override(self.language):
            if not self.begun:
                return _("The client went away before the download started.") if idle > BODY_START_SECONDS else None
            if idle > settings.DOWNLOAD_IDLE_SECONDS:
                return (_("The client went away or stopped reading: it took nothing for %(seconds)s s.")
                        % {"seconds": settings.DOWNLOAD_IDLE_SECONDS})
            return None

    def _run(self) -> None:
        gone: str | None = None  # why the pump ends the download itself (the response may never)
        try:
            last_report = last_check = last_taken = time.monotonic()
            while not self.stop.is_set():
                if not self._slots.acquire(timeout=DOWNLOAD_CHECK_SECONDS):
                    # The client is slow, or gone without the server telling the response.
                    now = time.monotonic()
                    if gone := self._gone(now - last_taken):
                        self._loop.call_soon_threadsafe(self.queue.put_nowait, _Abandoned())
                        return
                    if now - last_check >= DOWNLOAD_CHECK_SECONDS:
                        last_check = now
                        runner.touch(self.ctx.job)  # slow is not dead: the reaper must not fail it
                    continue
                last_taken = time.monotonic()
                block: bytes | BaseException
                try:
                    block = self.source.read(DOWNLOAD_BLOCK_BYTES)
                    now = time.monotonic()
                    if block and now - last_report >= DOWNLOAD_REPORT_SECONDS:
                        last_report = now
                        self.ctx.report(self.reader.done, self.reader.size)
                    if block and now - last_check >= DOWNLOAD_CHECK_SECONDS:
                        last_check = now
                        runner.touch(self.ctx.job)
                        if _cancel_requested(self.ctx.job):
                            block = _Cancelled()
                except Exception as exc:  # noqa: BLE001 - the response ends with it, not hangs
                    block = exc
                try:
                    self._loop.call_soon_threadsafe(self.queue.put_nowait, block)
                except RuntimeError:
                    return  # the server's event loop is closed: nobody reads any more
                if not isinstance(block, bytes) or not block:
                    return
        except RuntimeError:
            pass  # the server's event loop is closed
        finally:
            db_connection.close()  # this thread's own connection
            if gone:
                threading.Thread(target=_end_download, args=(self.ctx, self, (Job.State.FAILED, gone)),
                                 daemon=True).start()


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _how(request: HttpRequest, volume: Volume) -> tuple[bool, bool] | HttpResponse:
    """(sparse, framed) the download asks for, or the answer that refuses it."""
    if volume.unsafe_reason:  # what a download reads is the file itself, but an unsafe image is quarantined
        return _text(_("Refused: %(reason)s Only an admin can delete this volume.") % {"reason": volume.unsafe_reason},
                     409)
    framed = request.GET.get("format") == "sparse"
    if not framed and request.GET.get("format") not in (None, "", "raw"):
        return _text(_("format must be sparse or raw"), 400)
    return framed or request.GET.get("sparse") in ("1", "true", "yes"), framed


@accepts_token
async def volume_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The volume's bytes, streamed from libvirt in constant memory; recorded as a download job.

    Plain (for browsers): the bytes with Content-Length and the volume's name as the filename, an ETag, and a
    single Range honoured (206) when its If-Range, if any, is that ETag: an interrupted download resumes.
    ?sparse=1 reads with libvirt's sparse stream: holes are not read or sent by the host, and
    become zeros only here (an HTTP body has no holes), so a thin volume downloads faster.
    ?format=sparse (for scripts such as scripts/vstransfer.py): the framed format of
    virtstorage/virt/sparse_format.py, data and hole records and an end record, so only the data
    crosses the socket and the client can keep holes as holes; implies the sparse stream.
    """
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    user = await request.auser()
    if not await sync_to_async(is_member)(user):
        raise Http404()
    volume = await sync_to_async(_downloadable)(user, pk)
    how = _how(request, volume)
    if isinstance(how, HttpResponse):
        return how
    sparse, framed = how
    try:
        ctx = await sync_to_async(_start_download)(request, user, volume, sparse, framed)
    except runner.JobConflict as exc:
        return _text(str(exc), 409)
    opened = await _open_reader(ctx, volume, request, user.get_username(), sparse, framed)
    if isinstance(opened, HttpResponse):
        return opened
    reader, etag = opened
    pump = _DownloadPump(ctx, reader, downloads.SparseEncoder(reader) if framed else reader)
    pump.start()  # reads ahead while the headers go out; ends the download if the body never starts
    return _response(_body(ctx, pump, volume, framed), ctx, reader, volume, framed, etag)


async def _open_reader(ctx: runner.JobContext, volume: Volume, request: HttpRequest, username: str, sparse: bool,
                       framed: bool) -> tuple[downloads.Reader, str] | HttpResponse:
    """The volume's reader (of the range the request asks for, if any) and its ETag, after the image check, with
    the job's log saying how it reads; else the refusal."""
    how = {"sparse": sparse, "framed": framed, "range_header": request.headers.get("Range"),
           "if_range": request.headers.get("If-Range")}
    try:
        if download_relay.relayed(volume.pool):  # the host's own worker checks and reads it
            reader, etag = await asyncio.to_thread(download_relay.open_reader, volume,
                                                   language=translation.get_language(), **how)
        else:
            reader, etag = await asyncio.to_thread(_open_here, volume, **how)
    except (UnsafeImage, VirtError, Unsatisfiable) as exc:
        unsatisfiable = isinstance(exc, Unsatisfiable)
        await sync_to_async(runner.finish_inline)(ctx, Job.State.FAILED, error=_(
            "The range asked for starts past the volume's end.") if unsatisfiable else str(exc))
        if unsatisfiable:
            return HttpResponse(status=416, headers={"Content-Range": f"bytes */{exc.length}"})
        if isinstance(exc, UnsafeImage):
            return _text(_("Refused: %(reason)s") % {"reason": exc}, 409)
        return _text(_("Cannot read volume %(name)s: %(error)s") % {"name": volume.name, "error": exc}, 502)
    try:
        await sync_to_async(ctx.step)(_sending(reader, sparse, username))
    except BaseException:
        await asyncio.to_thread(reader.close)
        raise
    return reader, etag


def _sending(reader: downloads.Reader, sparse: bool, username: str) -> str:
    """The download job's step: what is sent (the range, if one), to whom, read how."""
    if reader.size != reader.length:
        sending = _("Sending bytes %(first)s to %(last)s (%(size)s) of %(length)s to %(user)s, read %(how)s")
    elif sparse:
        sending = _("Sending %(size)s (holes read as holes) to %(user)s, read %(how)s")
    else:
        sending = _("Sending %(size)s to %(user)s, read %(how)s")
    return sending % {"size": binary_size(reader.size), "user": username, "how": reader.how,
                      "first": reader.offset, "last": reader.stop - 1, "length": binary_size(reader.length)}


async def _body(ctx: runner.JobContext, pump: _DownloadPump, volume: Volume, framed: bool) -> AsyncIterator[bytes]:
    """What the pump reads, block by block; the job ends with how the body ended."""
    reader = pump.reader
    outcome: tuple[str, str] = (Job.State.FAILED, _("The client went away before the end of the download."))
    pump.begun = True
    try:
        while block := await pump.get():
            yield block
        ctx.job.progress_done = reader.done
        sent = {"size": binary_size(reader.done), "name": volume.name, "data": binary_size(reader.data_bytes)}
        outcome = (Job.State.SUCCEEDED, _("Sent %(size)s of %(name)s (%(data)s of data)") % sent if framed
                   else _("Sent %(size)s of %(name)s") % sent)
    except _Abandoned:
        outcome = (Job.State.FAILED, _("The client went away before the download started."))
    except _Cancelled:
        outcome = (Job.State.CANCELLED, _("Cancelled by the user; the download is incomplete."))
    except VirtError as exc:
        outcome = (Job.State.FAILED, _("libvirt stopped the download: %(error)s") % {"error": exc})
    except Exception as exc:  # noqa: BLE001 - recorded on the job; the client sees a short body
        outcome = (Job.State.FAILED, _("The download stopped: %(error)s") % {"error": exc})
    finally:
        pump.stop.set()
        # In a thread of its own: a disconnect cancels this generator, and cleanup must still run.
        threading.Thread(target=_end_download, args=(ctx, pump, outcome), daemon=True).start()


def _response(content: AsyncIterator[bytes], ctx: runner.JobContext, reader: downloads.Reader, volume: Volume,
              framed: bool, etag: str) -> StreamingHttpResponse:
    if framed:
        # No Content-Length (the size depends on the holes): the end record tells a whole stream.
        response = StreamingHttpResponse(content, content_type=sparse_format.MIME_TYPE)
    else:
        partial = reader.size != reader.length
        response = StreamingHttpResponse(content, content_type="application/octet-stream", status=206 if partial
                                         else 200)
        response["Content-Length"] = str(reader.size)
        if partial:
            response["Content-Range"] = f"bytes {reader.offset}-{reader.stop - 1}/{reader.length}"
        if etag:  # what a resumed download sends back in If-Range
            response["ETag"], response["Accept-Ranges"] = etag, "bytes"
    response["Content-Disposition"] = content_disposition_header(True, download_name(volume, framed))
    response["X-Volume-Size"] = str(reader.length)
    response["X-Job-Id"] = str(ctx.job.pk)
    response["X-Accel-Buffering"] = "no"
    return response


def download_name(volume: Volume, framed: bool) -> str:
    """The file name a browser saves the download as: the volume's name, with ".qcow2" added to a qcow2 volume's
    name that lacks it (a tool that opens the file by its name then knows what it is). A framed stream is no image:
    its name stays the volume's."""
    fmt = volume.recorded_format or volume.format
    if not framed and fmt == "qcow2" and not volume.name.lower().endswith((".qcow2", ".qcow")):
        return f"{volume.name}.qcow2"
    return volume.name


def _end_download(ctx: runner.JobContext, pump: _DownloadPump, outcome: tuple[str, str]) -> None:
    if not pump.claim_end():
        return  # the pump gave up on a body that never started, and the body started after all
    state, message = outcome
    if pump.thread.is_alive():
        pump.thread.join()  # it sees stop within DOWNLOAD_CHECK_SECONDS, or after its current read
    try:
        pump.reader.close()  # before the end, this aborts the streams; it closes the connections
    finally:
        try:
            if state == Job.State.SUCCEEDED:
                runner.finish_inline(ctx, state, result=message)
            else:
                runner.finish_inline(ctx, state, error=message)
        finally:
            db_connection.close()  # this thread's own connection
