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
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from hosts.signals import resync
from jobs.models import Job
from jobs.runner import JobCancelled, JobContext, job_task
from pools.models import StoragePool
from virtstorage.virt import LibvirtHost, ObjectExists, ObjectNotFound, VirtError, imagecheck, open_host, streams
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import ImageFacts
from virtstorage.virt.units import binary_size

from . import relay, safety, staging
from .models import Upload
from .tasks import VolumeInUse, lead_to_volume, refuse_if_in_use

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.2  # a database read per check: not per chunk
# While waiting for chunks the job re-reads the upload's row when the web announces a change
# (staging.announce), and else quickly while they flow, backing off to WAIT_MAX_SECONDS when the
# client pauses (a browser retrying a dropped connection).
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
    values = {"lost": lost, "size": upload.size, "first": first, "more": len(missing) - 3}
    if len(missing) > 3:
        # The English says "ranges" for one too: a plural form only for the languages that need it.
        lost_text = ngettext("The upload is truncated: %(lost)s of %(size)s bytes never arrived (bytes %(first)s and "
                             "%(more)s more ranges).",
                             "The upload is truncated: %(lost)s of %(size)s bytes never arrived (bytes %(first)s and "
                             "%(more)s more ranges).", values["more"]) % values
    else:
        lost_text = _("The upload is truncated: %(lost)s of %(size)s bytes never arrived (bytes %(first)s).") % values
    written = (_("Nothing was written to the volume; send the missing ranges and complete again.")
               if upload.mode == Upload.Mode.EXISTING
               else _("The new volume was removed; send the missing ranges and complete again."))
    return f"{lost_text} {written}"


@job_task("upload", name="volumes.transfer_tasks.upload_volume")
def upload_volume(ctx: JobContext) -> str:
    try:
        upload = Upload.objects.select_related("pool").get(pk=ctx.params["upload"])
    except Upload.DoesNotExist as exc:  # abandoned (the runner then reads the owner's cancel) or expired
        raise UploadTruncated(_("The upload is gone (abandoned or expired) before its job began; nothing was "
                                "written.")) from exc
    pool_name, name = upload.pool.name, upload.volume_name
    receiver, in_use = None, False
    try:
        if upload.relayed:  # the chunks come through Redis into a staging file of this worker's
            receiver = relay.Receiver(ctx, upload, truncated=lambda u: UploadTruncated(truncation_message(u)),
                                      stalled=_stalled)
        result = _send(ctx, upload, pool_name, name, receiver)
    except BaseException as exc:
        in_use = isinstance(exc, VolumeInUse)  # a VM the inventory did not know of: it learns of it below
        reason = _("cancelled") if isinstance(exc, JobCancelled) else (str(exc) or exc.__class__.__name__)
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.FAILED, error=reason)
        if receiver is not None:  # the bytes stay here for the upload's next job, unless it is gone
            receiver.close(keep=Upload.objects.filter(pk=upload.pk).exists())
        raise
    finally:
        # The volume may have been replaced (or created, or removed) even if the job failed: show libvirt's
        # view of it. Only of it: the pool's other volumes did not change.
        resync(ctx.host, volumes=[(pool_name, name)], vms=in_use)
    upload.staging_path.unlink(missing_ok=True)
    if receiver is not None:
        receiver.close(keep=False)
    lead_to_volume(ctx, upload.pool_id, name)  # first: the volume counts as its team's before the upload stops
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.DONE, error="")  # reserving it (volumes/quota.py)
    return result


def _stalled(done: int) -> UploadStalled:
    return UploadStalled(
        _("No chunk arrived for %(seconds)s s after byte %(offset)s; the new volume was removed. "
          "The bytes received are kept: send the rest and complete the upload to write it again.")
        % {"seconds": settings.UPLOAD_IDLE_SECONDS, "offset": done})


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
                raise JobCancelled(_("The upload was abandoned by its owner; the new volume was removed.")) from exc
            for start, end in received:
                if start <= done < end:
                    if waiting_said:
                        ctx.step(_("Chunks arrive again: sending from byte %(offset)s") % {"offset": done})
                    return end
            if completed:
                upload.received = received
                raise UploadTruncated(truncation_message(upload))
            now = time.monotonic()
            if received != seen:
                seen, quiet_since, pause = received, now, WAIT_MIN_SECONDS
            elif now - quiet_since > idle_limit:
                raise _stalled(done)
            if not waiting_said and now - quiet_since > 2:
                waiting_said = True
                ctx.step(_("Waiting for the client's chunks from byte %(offset)s") % {"offset": done})
            ctx.check_cancel()
            staging.wait_for_news(upload.pk, pause)  # woken as soon as a range is recorded
            pause = min(pause * 2, WAIT_MAX_SECONDS)

    return available


def _send(ctx: JobContext, upload: Upload, pool_name: str, name: str, receiver: relay.Receiver | None) -> str:
    if upload.completed and upload.missing():
        raise UploadTruncated(truncation_message(upload))
    # available(done) says how far the staging file holds the bytes, waiting for them; None: all are there.
    available = None if upload.completed else _arrived(ctx, upload)
    if receiver is not None:
        available = _relayed(ctx, upload, receiver)
    path = upload.staging_path
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise UploadTruncated(_("The upload's staging file is gone (abandoned or cleaned up): upload again.")) from exc
    try:
        if os.fstat(fd).st_size != upload.size:
            raise UploadTruncated(
                _("The upload is truncated: the staging file holds %(held)s bytes, not %(size)s. Nothing was written "
                  "to the volume.") % {"held": os.fstat(fd).st_size, "size": upload.size})
        ctx.check_cancel()
        facts = _inspect_image(ctx, upload, fd, available)
        with open_host(ctx.host.uri, shared=False) as lv:
            replace = upload.mode == Upload.Mode.EXISTING
            # What an earlier job of this upload left (its worker was killed) is ours to replace.
            leftover = not replace and upload.volume_created and lv.has_volume(pool_name, name)
            if replace:
                refuse_if_in_use(ctx, lv, "replace")
                current = lv.volume(pool_name, name)  # ObjectNotFound says it clearly
                if upload.size > current.capacity:
                    raise ValueError(_("The file (%(size)s) is larger than volume %(name)s (%(capacity)s); nothing "
                                       "was written.") % {"size": binary_size(upload.size), "name": name,
                                                          "capacity": binary_size(current.capacity)})
                ctx.step(_("Replacing %(name)s with an empty volume (old data must not show through holes)")
                         % {"name": name})
            else:
                ctx.step(_("Creating volume %(name)s in pool %(pool)s") % {"name": name, "pool": pool_name})
            try:
                streams.prepare_volume(lv, pool_name, name, replace=replace or leftover)
            except ObjectExists as exc:
                raise ObjectExists(_("A volume named %(name)s already exists in pool %(pool)s.")
                                   % {"name": name, "pool": pool_name}) from exc
            except ObjectNotFound as exc:
                raise ObjectNotFound(_("Volume %(name)s is gone from pool %(pool)s.")
                                     % {"name": name, "pool": pool_name}) from exc
            if not replace:
                Upload.objects.filter(pk=upload.pk).update(volume_created=True)
            try:
                info = _write(ctx, lv, upload, fd, pool_name, name, available, facts.format)
            except BaseException:
                # A new volume holding part of the file is of no use to anyone. If it cannot be removed
                # now (libvirtd restarting), it stays ours: the next job of this upload replaces it.
                if not replace and remove_quietly(lv, pool_name, name):
                    Upload.objects.filter(pk=upload.pk).update(volume_created=False)
                raise
            if info.backing_path or vvolumes.format_family(info.format) != facts.format:
                remove_quietly(lv, pool_name, name)
                refusal = (_("libvirt reads the uploaded image as %(read)s backed by %(backing)s; volume %(name)s "
                             "was removed. Upload a self-contained raw or qcow2 image.") if info.backing_path else
                           _("libvirt reads the uploaded image as %(read)s, not %(format)s; volume %(name)s was "
                             "removed. Upload a self-contained raw or qcow2 image."))
                raise imagecheck.UnsafeImage(refusal % {"read": info.format, "backing": info.backing_path,
                                                        "format": facts.format, "name": name})
            if replace:
                safety.record_format(ctx.host, pool_name, name, facts.format)
    finally:
        os.close(fd)
    return _("Uploaded %(size)s into %(pool)s/%(name)s: %(format)s, virtual size %(virtual)s, disk size %(disk)s") % {
        "size": binary_size(upload.size), "pool": pool_name, "name": name, "format": info.format,
        "virtual": binary_size(info.capacity), "disk": binary_size(info.allocation)}


def _relayed(ctx: JobContext, upload: Upload, receiver: relay.Receiver) -> Callable[[int], int] | None:
    """Into a new volume the job writes the bytes as they come off the relay; otherwise (replacing a volume, or
    started at complete) it takes them all first, and the client's complete, so an abandoned upload never costs
    a volume its contents."""
    if upload.streaming and not upload.completed:
        return receiver.available
    receiver.receive_all()
    upload.refresh_from_db()
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.SENDING)
    return None


def _inspect_image(ctx: JobContext, upload: Upload, fd: int, available: Callable[[int], int] | None) -> ImageFacts:
    """Read the image's header (waiting for its first bytes if they are still on their way) and refuse it
    (imagecheck.UnsafeImage) before any volume is created or replaced: a format other than the one stated,
    one the app does not support, a backing file, an external data file."""
    ready = upload.size if available is None else 0
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
    found = (_("The file is a %(format)s image (as stated): no backing file, no external data file")
             if upload.stated_format else _("The file is a %(format)s image: no backing file, no external data file"))
    ctx.step(found % {"format": facts.format})
    return facts


def _write(ctx: JobContext, lv: LibvirtHost, upload: Upload, fd: int, pool_name: str, name: str,
           available: Callable[[int], int] | None, image_format: str):
    writer = streams.open_writer(lv, pool_name, name, upload.size, direct=ctx.host.direct_io,
                                 image_format=image_format)
    if available is None:
        ctx.step(_("Writing %(size)s %(how)s (%(holes)s of holes kept as holes)")
                 % {"size": binary_size(upload.size), "how": writer.how, "holes": binary_size(upload.hole_bytes)})
    else:
        ctx.step(_("Writing %(size)s %(how)s as its chunks arrive (holes kept as holes)")
                 % {"size": binary_size(upload.size), "how": writer.how})
    ctx.report(0, upload.size)
    last_check = time.monotonic()

    def progress(done: int) -> None:
        nonlocal last_check
        ctx.report(done, upload.size)
        now = time.monotonic()
        if now - last_check >= CANCEL_CHECK_SECONDS:
            last_check = now
            ctx.check_cancel()

    streams.send_file(writer, fd, upload.size, progress, available=available)
    if writer.leaves_pool_unscanned:
        StoragePool.objects.filter(host=ctx.host, name=pool_name).want_rescan()
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
        if upload.relayed:  # its staging file is on the worker's machine, swept there (relay.sweep_orphans)
            relay.discard(upload.pk)
        else:
            upload.staging_path.unlink(missing_ok=True)
        upload.delete()
        removed += 1
    staging_dir = Path(settings.UPLOAD_STAGING_DIR)
    known = {f"{pk}.part" for pk in Upload.objects.values_list("pk", flat=True)}
    for path in staging_dir.glob("*.part") if staging_dir.is_dir() else []:
        if path.name not in known and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d expired uploads and orphaned staging files", removed)
    return removed
