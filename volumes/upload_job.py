"""The upload job: write a staging file into a volume, holes kept as holes.

The bytes go through libvirt's sparse stream, or straight into the volume's file when the host is
this machine and allows it (Host.direct_io; virt/localfile.py).

A streaming upload (into a new volume) starts its job with the upload: the job sends each run of
bytes as soon as its chunks have arrived, so the volume is written while the client still sends
and the upload ends about when the last chunk lands. Otherwise the job starts at "complete" with
every byte there. Either way, missing bytes at "complete" fail the job and say which.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from hosts.signals import resync
from jobs.models import Job
from jobs.runner import JobCancelled, JobContext, job_task
from virtstorage.virt import LibvirtHost, ObjectExists, ObjectNotFound, VirtError, imagecheck, open_host, streams
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import ImageFacts
from virtstorage.virt.units import binary_size

from . import safety
from .models import Upload
from .tasks import refuse_if_in_use

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.2  # a database read per check: not per chunk
# While waiting for chunks the job re-reads the upload's row, quickly while they flow and backing off
# to WAIT_MAX_SECONDS when the client pauses (a browser retrying a dropped connection).
WAIT_MIN_SECONDS = 0.005
WAIT_MAX_SECONDS = 0.5


class UploadTruncated(Exception):
    """Some byte ranges never arrived: the volume is not written (or a new one is removed)."""


class UploadStalled(Exception):
    """No chunk arrived for UPLOAD_IDLE_SECONDS while the job was waiting for one."""


def truncation_message(upload: Upload) -> str:
    missing = upload.missing()
    lost = sum(end - start for start, end in missing)
    first = ", ".join(f"{start}-{end - 1}" for start, end in missing[:3])
    more = f" and {len(missing) - 3} more ranges" if len(missing) > 3 else ""
    written = ("Nothing was written to the volume" if upload.mode == Upload.Mode.EXISTING
               else "The new volume was removed")
    return (f"The upload is truncated: {lost} of {upload.size} bytes never arrived (bytes {first}{more}). "
            f"{written}; send the missing ranges and complete again.")


@job_task("upload", name="volumes.transfer_tasks.upload_volume")
def upload_volume(ctx: JobContext) -> str:
    upload = Upload.objects.select_related("pool").get(pk=ctx.params["upload"])
    pool_name, name = upload.pool.name, upload.volume_name
    try:
        result = _send(ctx, upload, pool_name, name)
    except BaseException as exc:
        reason = "cancelled" if isinstance(exc, JobCancelled) else (str(exc) or exc.__class__.__name__)
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.FAILED, error=reason)
        raise
    finally:
        # The volume may have been replaced even if the job failed: show libvirt's view.
        resync(ctx.host, pool_names=[pool_name])
    upload.staging_path.unlink(missing_ok=True)
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.DONE, error="")
    return result


def _arrived(ctx: JobContext, upload: Upload) -> Callable[[int], int]:
    """available() for streams.upload_file: the end of the run of received bytes from `done`,
    waiting for the client's chunks; raises when the client completed with bytes missing, when
    it stopped sending for UPLOAD_IDLE_SECONDS, or on a cancel."""
    idle_limit = settings.UPLOAD_IDLE_SECONDS

    def available(done: int) -> int:
        pause = WAIT_MIN_SECONDS
        seen, quiet_since, waiting_said = None, time.monotonic(), False
        while True:
            try:
                received, completed = Upload.objects.values_list("received", "completed").get(pk=upload.pk)
            except Upload.DoesNotExist as exc:
                raise JobCancelled("The upload was abandoned by its owner; the new volume was removed.") from exc
            for start, end in received:
                if start <= done < end:
                    if waiting_said:
                        ctx.step(f"Chunks arrive again: sending from byte {done}")
                    return end
            if completed:
                upload.received = received
                raise UploadTruncated(truncation_message(upload))
            now = time.monotonic()
            if received != seen:
                seen, quiet_since, pause = received, now, WAIT_MIN_SECONDS
            elif now - quiet_since > idle_limit:
                raise UploadStalled(
                    f"No chunk arrived for {idle_limit} s after byte {done}; the new volume was removed. "
                    "The bytes received are kept: send the rest and complete the upload to write it again.")
            if not waiting_said and now - quiet_since > 2:
                waiting_said = True
                ctx.step(f"Waiting for the client's chunks from byte {done}")
            ctx.check_cancel()
            time.sleep(pause)
            pause = min(pause * 2, WAIT_MAX_SECONDS)

    return available


def _send(ctx: JobContext, upload: Upload, pool_name: str, name: str) -> str:
    if upload.completed and upload.missing():
        raise UploadTruncated(truncation_message(upload))
    path = upload.staging_path
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise UploadTruncated("The upload's staging file is gone (abandoned or cleaned up): upload again.") from exc
    try:
        if os.fstat(fd).st_size != upload.size:
            raise UploadTruncated(
                f"The upload is truncated: the staging file holds {os.fstat(fd).st_size} bytes, "
                f"not {upload.size}. Nothing was written to the volume.")
        ctx.check_cancel()
        facts = _inspect_image(ctx, upload, fd)
        with open_host(ctx.host.uri, shared=False) as lv:
            replace = upload.mode == Upload.Mode.EXISTING
            # What an earlier job of this upload left (its worker was killed) is ours to replace.
            leftover = not replace and upload.volume_created and lv.has_volume(pool_name, name)
            if replace:
                refuse_if_in_use(ctx, lv, "replace")
                current = lv.volume(pool_name, name)  # ObjectNotFound says it clearly
                if upload.size > current.capacity:
                    raise ValueError(f"The file ({binary_size(upload.size)}) is larger than volume {name} "
                                     f"({binary_size(current.capacity)}); nothing was written.")
                ctx.step(f"Replacing {name} with an empty volume (old data must not show through holes)")
            else:
                ctx.step(f"Creating volume {name} in pool {pool_name}")
            try:
                streams.prepare_volume(lv, pool_name, name, replace=replace or leftover)
            except ObjectExists as exc:
                raise ObjectExists(f"A volume named {name} already exists in pool {pool_name}.") from exc
            except ObjectNotFound as exc:
                raise ObjectNotFound(f"Volume {name} is gone from pool {pool_name}.") from exc
            if not replace:
                Upload.objects.filter(pk=upload.pk).update(volume_created=True)
            try:
                info = _write(ctx, lv, upload, fd, pool_name, name)
            except BaseException:
                # A new volume holding part of the file is of no use to anyone. If it cannot be removed
                # now (libvirtd restarting), it stays ours: the next job of this upload replaces it.
                if not replace and remove_quietly(lv, pool_name, name):
                    Upload.objects.filter(pk=upload.pk).update(volume_created=False)
                raise
            if info.backing_path or vvolumes.format_family(info.format) != facts.format:
                remove_quietly(lv, pool_name, name)
                raise imagecheck.UnsafeImage(
                    f"libvirt reads the uploaded image as {info.format}"
                    + (f" backed by {info.backing_path}" if info.backing_path else f", not {facts.format}")
                    + f"; volume {name} was removed. Upload a self-contained raw or qcow2 image.")
            if replace:
                safety.record_format(ctx.host, pool_name, name, facts.format)
    finally:
        os.close(fd)
    return (f"Uploaded {binary_size(upload.size)} into {pool_name}/{name}: {info.format}, "
            f"virtual size {binary_size(info.capacity)}, disk size {binary_size(info.allocation)}")


def _inspect_image(ctx: JobContext, upload: Upload, fd: int) -> ImageFacts:
    """Read the image's header (waiting for its first bytes if they are still on their way) and refuse it
    (imagecheck.UnsafeImage) before any volume is created or replaced: a format other than the one stated,
    one the app does not support, a backing file, an external data file."""
    available = _arrived(ctx, upload)
    ready = upload.size if upload.completed else 0
    need = min(imagecheck.HEAD_BYTES, upload.size)
    while True:
        while ready < need:
            ready = available(ready)
        head = os.pread(fd, need, 0)
        more = min(imagecheck.needed_bytes(head), upload.size)
        if more <= need:
            break
        need = more
    facts = imagecheck.inspect(head, upload.stated_format or None)
    ctx.step(f"The file is a {facts.format} image" + (" (as stated)" if upload.stated_format else "")
             + ": no backing file, no external data file")
    return facts


def _write(ctx: JobContext, lv: LibvirtHost, upload: Upload, fd: int, pool_name: str, name: str):
    writer = streams.open_writer(lv, pool_name, name, upload.size, direct=ctx.host.direct_io)
    if upload.completed:
        ctx.step(f"Writing {binary_size(upload.size)} {writer.how} "
                 f"({binary_size(upload.hole_bytes)} of holes kept as holes)")
    else:
        ctx.step(f"Writing {binary_size(upload.size)} {writer.how} as its chunks arrive (holes kept as holes)")
    ctx.report(0, upload.size)
    last_check = time.monotonic()

    def progress(done: int) -> None:
        nonlocal last_check
        ctx.report(done, upload.size)
        now = time.monotonic()
        if now - last_check >= CANCEL_CHECK_SECONDS:
            last_check = now
            ctx.check_cancel()

    streams.send_file(writer, fd, upload.size, progress, available=None if upload.completed else _arrived(ctx, upload))
    return streams.restore_capacity(lv, pool_name, name, upload.capacity)


def remove_quietly(lv: LibvirtHost, pool_name: str, name: str) -> bool:
    """Remove the volume; True when it is gone (or was already)."""
    try:
        lv.delete_volume(pool_name, name)
    except ObjectNotFound:
        pass
    except VirtError as exc:
        log.warning("could not remove the partial volume %s/%s: %s", pool_name, name, exc)
        return False
    return True


@shared_task(name="volumes.transfer_tasks.expire_uploads", ignore_result=True)
def expire_uploads() -> int:
    """Remove uploads left unfinished for UPLOAD_EXPIRE_HOURS (their staging files can be GiB), and
    staging files that no upload owns. An upload whose job is running is left alone."""
    cutoff = timezone.now() - timedelta(hours=settings.UPLOAD_EXPIRE_HOURS)
    stale = (Upload.objects.filter(updated_at__lt=cutoff).exclude(state=Upload.State.SENDING)
             .filter(Q(job__isnull=True) | ~Q(job__state__in=Job.ACTIVE_STATES)))
    removed = 0
    for upload in stale:
        upload.staging_path.unlink(missing_ok=True)
        upload.delete()
        removed += 1
    staging_dir = Path(settings.VAR_DIR) / "uploads"
    known = {f"{pk}.part" for pk in Upload.objects.values_list("pk", flat=True)}
    for path in staging_dir.glob("*.part") if staging_dir.is_dir() else []:
        if path.name not in known and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d expired uploads and orphaned staging files", removed)
    return removed
