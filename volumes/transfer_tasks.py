"""The upload job: stream a complete staging file into a volume with libvirt's sparse stream."""

from __future__ import annotations

import logging
import os
import time

from virtstorage.hosts.inventory import sync_host
from virtstorage.jobs.runner import JobCancelled, JobContext, job_task
from virtstorage.templatetags.sizes import binary_size
from virtstorage.virt import ObjectExists, ObjectNotFound, open_host, streams

from .models import Upload

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.2  # a database read per check: not per chunk


class UploadTruncated(Exception):
    """Some byte ranges never arrived: nothing is written to the volume."""


def truncation_message(upload: Upload) -> str:
    missing = upload.missing()
    lost = sum(end - start for start, end in missing)
    first = ", ".join(f"{start}-{end - 1}" for start, end in missing[:3])
    more = f" and {len(missing) - 3} more ranges" if len(missing) > 3 else ""
    return (f"The upload is truncated: {lost} of {upload.size} bytes never arrived (bytes {first}{more}). "
            "Nothing was written to the volume; send the missing ranges and complete again.")


@job_task("upload")
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
        sync_host(ctx.host, pool_names=[pool_name])
    upload.staging_path.unlink(missing_ok=True)
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.DONE, error="")
    return result


def _send(ctx: JobContext, upload: Upload, pool_name: str, name: str) -> str:
    if upload.missing():
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
        with open_host(ctx.host.uri, shared=False) as lv:
            replace = upload.mode == Upload.Mode.EXISTING
            if replace:
                current = lv.volume(pool_name, name)  # ObjectNotFound says it clearly
                if upload.size > current.capacity:
                    raise ValueError(f"The file ({binary_size(upload.size)}) is larger than volume {name} "
                                     f"({binary_size(current.capacity)}); nothing was written.")
                ctx.step(f"Replacing {name} with an empty volume (old data must not show through holes)")
            else:
                ctx.step(f"Creating volume {name} in pool {pool_name}")
            try:
                streams.prepare_volume(lv, pool_name, name, replace=replace)
            except ObjectExists as exc:
                raise ObjectExists(f"A volume named {name} already exists in pool {pool_name}.") from exc
            except ObjectNotFound as exc:
                raise ObjectNotFound(f"Volume {name} is gone from pool {pool_name}.") from exc
            ctx.step(f"Sending {binary_size(upload.size)} ({binary_size(upload.hole_bytes)} of holes "
                     "sent as holes)")
            ctx.report(0, upload.size)
            last_check = time.monotonic()

            def progress(done: int) -> None:
                nonlocal last_check
                ctx.report(done, upload.size)
                now = time.monotonic()
                if now - last_check >= CANCEL_CHECK_SECONDS:
                    last_check = now
                    ctx.check_cancel()

            streams.upload_file(lv, pool_name, name, fd, upload.size, progress)
            info = streams.restore_capacity(lv, pool_name, name, upload.capacity)
    finally:
        os.close(fd)
    return (f"Uploaded {binary_size(upload.size)} into {pool_name}/{name}: {info.format}, "
            f"virtual size {binary_size(info.capacity)}, disk size {binary_size(info.allocation)}")
