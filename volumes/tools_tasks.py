"""Job bodies of the image tools: check, convert and import, with qemu-img on this machine (virt/qemuimg.py).

Right before qemu-img runs, each job checks every file it will let qemu-img open and opens it itself
(image_files: the volume and its backing chain through volumes/safety.py, or a host file from the import
roots), so qemu-img opens those and nothing an image names. A job that makes a volume has libvirt create it
empty (as an upload does), lets qemu-img write the image into its file (its own progress, -p), refreshes the
pool so libvirt probes it, and re-syncs that volume (tasks.job_connection); on a failure or a cancel the
half-written volume is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack

from django.utils.translation import gettext as _

from jobs.runner import JobContext, job_task
from pools.models import StoragePool
from virtstorage.virt import LibvirtHost, localfile, open_host, qemuimg, streams
from virtstorage.virt import volumes as ops
from virtstorage.virt.imagecheck import ImageFacts, UnsafeImage
from virtstorage.virt.qemuimg import ImageFile
from virtstorage.virt.types import VolumeInfo
from virtstorage.virt.units import binary_size

from . import image_files, safety
from .tasks import job_connection, lead_to_volume
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
    ctx.step(_("Connecting to %(host)s") % {"host": ctx.host.name})
    with open_host(ctx.host.uri) as lv:  # libvirt's calls are short: qemu-img does the long work
        ctx.step(_("Checking the image of %(name)s (format, backing and data files) and opening it") % {"name": name})
        with image_files.open_chain(ctx.host, lv, ctx.pool.name, name) as chain:
            if chain.links[0].format != "qcow2":
                raise qemuimg.QemuImgFailed(_("%(name)s is a %(format)s volume: raw images have no metadata that "
                                              "qemu-img could check.") % {"name": name,
                                                                          "format": chain.links[0].format})
            ctx.step(_("Running qemu-img check on %(name)s (read only: nothing is repaired)") % {"name": name})
            report = qemuimg.check(chain.image(with_backing=False), tick=_cancel_ticker(ctx))
    if report.messages:
        ctx.step(_("qemu-img found:\n%(messages)s") % {"messages": "\n".join(report.messages)})
    if report.exit_code == 1:
        raise qemuimg.QemuImgFailed(report.summary())
    return report.summary()


@job_task("convert", name="volumes.tools_tasks.convert_volume_job")
def convert_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    source, target_pool = ctx.job.volume_name, p["target_pool"]
    image_files.require_tools(ctx.host)
    # The source is unchanged: only the new volume is synced.
    with job_connection(ctx, (target_pool, p["name"]), shared=True) as lv:
        ctx.step(_("Checking the image of %(source)s and its backing chain (format, backing and data files)")
                 % {"source": source})
        with image_files.open_chain(ctx.host, lv, ctx.pool.name, source) as chain:
            if len(chain.links) > 1:  # the volumes below it are news; the volume alone is in the step above
                ctx.step(_("Reading %(chain)s") % {"chain": chain_text(chain)})
            top = chain.links[0]
            info = write_new_volume(ctx, lv, chain.image(), top.info.capacity, target_pool, p)
    lead_to_volume(ctx, ctx.job.target_pool_id, info.name)
    return _("Converted %(source)s (%(source_format)s) to %(pool)s/%(name)s: %(format)s, virtual size %(virtual)s, "
             "disk size %(disk)s") % {"source": source, "source_format": top.format, "pool": target_pool,
                                      "name": info.name, "format": info.format, "virtual": binary_size(info.capacity),
                                      "disk": binary_size(info.allocation)}


@job_task("import", name="volumes.tools_tasks.import_image_job")
def import_image_job(ctx: JobContext) -> str:
    p = ctx.params
    image_files.require_tools(ctx.host)
    with job_connection(ctx, (ctx.pool.name, p["name"]), shared=True) as lv, ExitStack() as stack:
        ctx.step(_("Checking %(path)s: inside the import roots, a regular file") % {"path": p["path"]})
        source = image_files.open_import_file(p["path"])
        stack.callback(source.close)
        image, facts = source_image(ctx, lv, stack, source)
        info = write_new_volume(ctx, lv, image, source.virtual_size(facts), ctx.pool.name,
                                 {**p, "format": p.get("format") or facts.format})
    lead_to_volume(ctx, ctx.pool.pk, info.name)
    return _("Imported %(path)s (%(source_format)s) as %(pool)s/%(name)s: %(format)s, virtual size %(virtual)s, "
             "disk size %(disk)s") % {"path": source.path, "source_format": facts.format, "pool": ctx.pool.name,
                                      "name": info.name, "format": info.format, "virtual": binary_size(info.capacity),
                                      "disk": binary_size(info.allocation)}


def source_image(ctx: JobContext, lv: LibvirtHost, stack: ExitStack,
                 source: image_files.HostImage) -> tuple[ImageFile, ImageFacts]:
    """What qemu-img reads of a host file (import, adopt): the file, and the verified chain of the pool volume
    it is backed by, if any; a backing file that is not a safe volume of the host's pools is refused."""
    named: list[str] = []
    facts = source.inspect(lambda path: named.append(path) or image_files.safe_volume_at(ctx.host, path) is not None)
    if not named:
        ctx.step(_("Its content is a %(format)s image (read from its bytes, not its name): no backing file, no "
                   "external data file") % {"format": facts.format})
        return ImageFile(source.fd, facts.format), facts
    below = image_files.safe_volume_at(ctx.host, named[-1])
    if below is None:
        raise UnsafeImage(_("%(path)s names the backing file %(backing)s, which is not a safe volume of "
                            "%(host)s's pools.") % {"path": source.path, "backing": named[-1], "host": ctx.host.name})
    chain = stack.enter_context(image_files.open_chain(ctx.host, lv, below.pool.name, below.name))
    ctx.step(_("Its content is a qcow2 image backed by %(chain)s: the copy is flat") % {"chain": chain_text(chain)})
    return ImageFile(source.fd, "qcow2", chain.image()), facts


def write_new_volume(ctx: JobContext, lv: LibvirtHost, source: ImageFile, capacity: int, pool_name: str,
                      p: dict) -> VolumeInfo:
    """A new volume (p: name, format, provisioning, compress) that libvirt creates empty and qemu-img writes
    from source; removed again on any failure or cancel. capacity: the source's virtual size (for progress)."""
    name, fmt, provisioning, compress = p["name"], p["format"], p.get("provisioning", "off"), bool(p.get("compress"))
    ctx.check_cancel()
    # No step of its own: the empty volume is there in a millisecond, and each step is a database write and a
    # message to the job's watchers; the writing step below follows at once (a failure here still says why).
    streams.prepare_volume(lv, pool_name, name, replace=False)
    try:
        target = localfile.open_volume_file(lv, pool_name, name, write=True)
        if target is None:
            raise image_files.ToolsUnavailable(_("The app cannot open the new volume %(name)s's file to write it; "
                                                 "it was removed.") % {"name": name})
        try:
            ctx.step(_writing_message(compress, provisioning != "off")
                     % {"format": fmt, "size": binary_size(capacity)}, done=0, total=capacity)
            tick = _cancel_ticker(ctx)

            def progress(percent: float) -> None:
                ctx.report(int(capacity * percent / 100), capacity)
                tick()

            qemuimg.convert(source, target.fd, fmt, compress=compress, preallocation=provisioning, progress=progress)
            try:  # a raw source may hold another format's header (its guest wrote one): so does its raw copy
                unscanned = streams.after_write_in_place(lv, pool_name, target, fmt)
            except UnsafeImage as exc:
                raise UnsafeImage(_("%(reason)s The new volume was removed.") % {"reason": exc}, exc.reason) from exc
        finally:
            target.close()
        if unscanned:
            StoragePool.objects.filter(host=ctx.host, name=pool_name).want_rescan()
        info = lv.volume(pool_name, name)  # libvirt's probe of a qcow2 after its rescan of the pool: checked here
        if info.backing_path or ops.format_family(info.format) != fmt:
            raise UnsafeImage(_("libvirt reads the new volume as %(read)s, not %(format)s; it was removed.")
                              % {"read": info.format, "format": fmt})
        safety.record_format(ctx.host, pool_name, name, fmt)  # a sync during the write saw an empty raw file
    except BaseException:
        remove_quietly(lv, pool_name, name)
        raise
    return info


def _writing_message(compressed: bool, preallocated: bool) -> str:
    """The step that starts qemu-img convert, one whole sentence per combination (for the translation)."""
    if compressed and preallocated:
        return _("Writing a %(format)s image of %(size)s with qemu-img convert, compressed, preallocated "
                 "(qemu-img's own progress)")
    if compressed:
        return _("Writing a %(format)s image of %(size)s with qemu-img convert, compressed (qemu-img's own progress)")
    if preallocated:
        return _("Writing a %(format)s image of %(size)s with qemu-img convert, preallocated "
                 "(qemu-img's own progress)")
    return _("Writing a %(format)s image of %(size)s with qemu-img convert (qemu-img's own progress)")
