"""Job bodies of the image tools: check, convert and import, with qemu-img on this machine (virt/qemuimg.py).

Right before qemu-img runs, each job checks every file it will let qemu-img open and opens it itself
(image_files: the volume and its backing chain through volumes/safety.py, or a host file from the import
roots), so qemu-img opens those and nothing an image names. A job that makes a volume has libvirt create it
empty (as an upload does), lets qemu-img write the image into its file (its own progress, -p), refreshes the
pool so libvirt probes it, and re-syncs the inventory (tasks.job_connection); on a failure or a cancel the
half-written volume is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack

from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, localfile, open_host, qemuimg, streams
from virtstorage.virt import volumes as ops
from virtstorage.virt.imagecheck import ImageFacts, UnsafeImage
from virtstorage.virt.qemuimg import ImageFile
from virtstorage.virt.types import VolumeInfo
from virtstorage.virt.units import binary_size

from . import image_files, safety
from .tasks import job_connection
from .upload_job import remove_quietly

CANCEL_CHECK_SECONDS = 0.5  # a database read per check, not per progress report


def _cancel_ticker(ctx: JobContext) -> Callable[[], None]:
    last = time.monotonic()

    def tick() -> None:
        nonlocal last
        if time.monotonic() - last >= CANCEL_CHECK_SECONDS:
            last = time.monotonic()
            ctx.check_cancel()

    return tick


def chain_text(chain: image_files.OpenChain) -> str:
    return " → ".join(f"{link.pool_name}/{link.name} ({link.format})" for link in chain.links)


@job_task("check", name="volumes.tools_tasks.check_image_job")
def check_image_job(ctx: JobContext) -> str:
    name = ctx.job.volume_name
    image_files.require_tools(ctx.host)
    ctx.step(f"Connecting to {ctx.host.name}")
    with open_host(ctx.host.uri, shared=False) as lv:
        ctx.step(f"Checking the image of {name} (format, backing and data files) and opening it")
        with image_files.open_chain(ctx.host, lv, ctx.pool.name, name) as chain:
            if chain.links[0].format != "qcow2":
                raise qemuimg.QemuImgFailed(f"{name} is a {chain.links[0].format} volume: raw images have no "
                                            "metadata that qemu-img could check.")
            ctx.step(f"Running qemu-img check on {name} (read only: nothing is repaired)")
            report = qemuimg.check(chain.image(with_backing=False), tick=_cancel_ticker(ctx))
    if report.messages:
        ctx.step("qemu-img found:\n" + "\n".join(report.messages))
    if report.exit_code == 1:
        raise qemuimg.QemuImgFailed(report.summary())
    return report.summary()


@job_task("convert", name="volumes.tools_tasks.convert_volume_job")
def convert_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    source, target_pool = ctx.job.volume_name, p["target_pool"]
    image_files.require_tools(ctx.host)
    with job_connection(ctx, target_pool) as lv:  # the source's pool is unchanged: only the new volume's is synced
        ctx.step(f"Checking the image of {source} and its backing chain (format, backing and data files)")
        with image_files.open_chain(ctx.host, lv, ctx.pool.name, source) as chain:
            ctx.step(f"Reading {chain_text(chain)}")
            top = chain.links[0]
            info = write_new_volume(ctx, lv, chain.image(), top.info.capacity, target_pool, p)
    return (f"Converted {source} ({top.format}) to {target_pool}/{info.name}: {info.format}, virtual size "
            f"{binary_size(info.capacity)}, disk size {binary_size(info.allocation)}")


@job_task("import", name="volumes.tools_tasks.import_image_job")
def import_image_job(ctx: JobContext) -> str:
    p = ctx.params
    image_files.require_tools(ctx.host)
    with job_connection(ctx, ctx.pool.name) as lv, ExitStack() as stack:
        ctx.step(f"Checking {p['path']}: inside the import roots, a regular file")
        source = image_files.open_import_file(p["path"])
        stack.callback(source.close)
        image, facts = source_image(ctx, lv, stack, source)
        info = write_new_volume(ctx, lv, image, source.virtual_size(facts), ctx.pool.name,
                                 {**p, "format": p.get("format") or facts.format})
    return (f"Imported {source.path} ({facts.format}) as {ctx.pool.name}/{info.name}: {info.format}, virtual size "
            f"{binary_size(info.capacity)}, disk size {binary_size(info.allocation)}")


def source_image(ctx: JobContext, lv: LibvirtHost, stack: ExitStack,
                 source: image_files.HostImage) -> tuple[ImageFile, ImageFacts]:
    """What qemu-img reads of a host file (import, adopt): the file, and the verified chain of the pool volume
    it is backed by, if any; a backing file that is not a safe volume of the host's pools is refused."""
    named: list[str] = []
    facts = source.inspect(lambda path: named.append(path) or image_files.safe_volume_at(ctx.host, path) is not None)
    if not named:
        ctx.step(f"Its content is a {facts.format} image (read from its bytes, not its name): no backing file, no "
                 "external data file")
        return ImageFile(source.fd, facts.format), facts
    below = image_files.safe_volume_at(ctx.host, named[-1])
    if below is None:
        raise UnsafeImage(f"{source.path} names the backing file {named[-1]}, which is not a safe volume of "
                          f"{ctx.host.name}'s pools.")
    chain = stack.enter_context(image_files.open_chain(ctx.host, lv, below.pool.name, below.name))
    ctx.step(f"Its content is a qcow2 image backed by {chain_text(chain)}: the copy is flat")
    return ImageFile(source.fd, "qcow2", chain.image()), facts


def write_new_volume(ctx: JobContext, lv: LibvirtHost, source: ImageFile, capacity: int, pool_name: str,
                      p: dict) -> VolumeInfo:
    """A new volume (p: name, format, provisioning, compress) that libvirt creates empty and qemu-img writes
    from source; removed again on any failure or cancel. capacity: the source's virtual size (for progress)."""
    name, fmt, provisioning, compress = p["name"], p["format"], p.get("provisioning", "off"), bool(p.get("compress"))
    ctx.check_cancel()
    ctx.step(f"Creating volume {name} in pool {pool_name}, empty for qemu-img to write")
    streams.prepare_volume(lv, pool_name, name, replace=False)
    try:
        target = localfile.open_volume_file(lv, pool_name, name, write=True)
        if target is None:
            raise image_files.ToolsUnavailable(f"The app cannot open the new volume {name}'s file to write it; "
                                               "it was removed.")
        try:
            ctx.step(f"Writing a {fmt} image of {binary_size(capacity)} with qemu-img convert"
                     + (", compressed" if compress else "") + (", preallocated" if provisioning != "off" else "")
                     + " (qemu-img's own progress)")
            ctx.report(0, capacity)
            tick = _cancel_ticker(ctx)

            def progress(percent: float) -> None:
                ctx.report(int(capacity * percent / 100), capacity)
                tick()

            qemuimg.convert(source, target.fd, fmt, compress=compress, preallocation=provisioning, progress=progress)
        finally:
            target.close()
        lv.refresh_pool(pool_name)  # as after an upload: the pool's allocation, and libvirt's probe of the file
        info = lv.volume(pool_name, name)
        if info.backing_path or ops.format_family(info.format) != fmt:
            raise UnsafeImage(f"libvirt reads the new volume as {info.format}, not {fmt}; it was removed.")
        safety.record_format(ctx.host, pool_name, name, fmt)  # a sync during the write saw an empty raw file
    except BaseException:
        remove_quietly(lv, pool_name, name)
        raise
    return info
