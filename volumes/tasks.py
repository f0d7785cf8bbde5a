"""Job bodies of volume operations. They run in a Celery worker, never in a request.

Each opens its own libvirt connection for the operation (a long call blocks the
connection it runs on) and refreshes the inventory of the pools it touched,
whether the operation worked or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hosts.signals import resync
from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, open_host
from virtstorage.virt import volumes as ops
from virtstorage.virt.units import binary_size

from . import safety
from .models import in_use_refusal


class VolumeInUse(Exception):
    """A defined virtual machine has a disk on the volume."""


@contextmanager
def job_connection(ctx: JobContext, *pool_names: str) -> Iterator[LibvirtHost]:
    """A dedicated connection for the job; the touched pools are synced afterwards in any case."""
    ctx.step(f"Connecting to {ctx.host.name}")
    try:
        with open_host(ctx.host.uri, shared=False) as host:
            yield host
    finally:
        ctx.step("Refreshing the inventory")
        resync(ctx.host, pool_names=list(dict.fromkeys(pool_names)))


def _verified(ctx: JobContext, host: LibvirtHost) -> None:
    """The image check (volumes/safety.py) right before libvirt opens the volume."""
    ctx.step(f"Checking the image of {ctx.job.volume_name} (format, backing and data files)")
    safety.verify(ctx.host, host, ctx.pool.name, ctx.job.volume_name)


def refuse_if_in_use(ctx: JobContext, host: LibvirtHost, action: str) -> None:
    """Refuse (VolumeInUse) when a defined VM has a disk on the job's volume, unless an admin forced it."""
    volume = host.volume(ctx.pool.name, ctx.job.volume_name)
    users = sorted(ops.volume_users(host, ctx.pool.name, volume))
    if users and ctx.params.get("force"):
        ctx.step(f"Used by virtual machine(s) {', '.join(users)}; going ahead because an admin forced it")
    elif users:
        raise VolumeInUse(in_use_refusal(action, volume.name, users))


@job_task("create", name="volumes.tasks.create_volume_job")
def create_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    with job_connection(ctx, ctx.pool.name) as host:
        ctx.step(f"Checking the free space of {ctx.pool.name}")
        ops.check_room(host, ctx.pool.name, p["capacity"], preallocation=p["preallocation"],
                       reserve=ctx.pool.reserve_bytes)
        ctx.check_cancel()
        ctx.step(f"Creating {p['format']} volume {p['name']} of {binary_size(p['capacity'])}"
                 + (" (preallocating)" if p["preallocation"] != "off" else ""))
        info = ops.create_volume(host, ctx.pool.name, p["name"], p["capacity"], fmt=p["format"],
                                 preallocation=p["preallocation"], backing_path=p.get("backing_path", ""),
                                 backing_format=p.get("backing_format", ""))
    return f"Created {info.name}: {binary_size(info.capacity)} virtual, {binary_size(info.allocation)} on disk"


@job_task("clone", name="volumes.tasks.clone_volume_job")
def clone_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    source, target_pool = ctx.job.volume_name, p["target_pool"]
    with job_connection(ctx, ctx.pool.name, target_pool) as host, open_host(ctx.host.uri) as watcher:
        _verified(ctx, host)
        ctx.step(f"Copying {source} to {target_pool}/{p['name']}"
                 + (f" as {p['format']}" if p.get("format") else "")
                 + "; libvirt finishes a copy even if asked to stop")
        info = ops.clone_volume(host, ctx.pool.name, source, target_pool, p["name"], fmt=p.get("format", ""),
                                watcher=watcher, on_progress=ctx.report)
    return f"Cloned {source} to {target_pool}/{info.name} ({info.format}, {binary_size(info.allocation)} on disk)"


@job_task("resize", name="volumes.tasks.resize_volume_job")
def resize_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    name = ctx.job.volume_name
    with job_connection(ctx, ctx.pool.name) as host:
        _verified(ctx, host)
        if p.get("shrink"):
            ctx.step("Checking that no virtual machine uses it")
            refuse_if_in_use(ctx, host, "shrink")
        ctx.check_cancel()
        verb = "Shrinking" if p.get("shrink") else "Growing"
        ctx.step(f"{verb} {name} to {binary_size(p['capacity'])}" + (" and allocating" if p.get("allocate") else ""))
        info = ops.resize_volume(host, ctx.pool.name, name, p["capacity"], allocate=bool(p.get("allocate")),
                                 shrink=bool(p.get("shrink")))
    return f"Resized {name} to {binary_size(info.capacity)} ({binary_size(info.allocation)} on disk)"


@job_task("delete", name="volumes.tasks.delete_volume_job")
def delete_volume_job(ctx: JobContext) -> str:
    name = ctx.job.volume_name
    with job_connection(ctx, ctx.pool.name) as host:
        ctx.step("Checking that no virtual machine uses it")
        refuse_if_in_use(ctx, host, "delete")
        ctx.check_cancel()
        ctx.step(f"Deleting {name}")
        host.delete_volume(ctx.pool.name, name)
    return f"Deleted {name} from {ctx.pool.name}"


@job_task("wipe", name="volumes.tasks.wipe_volume_job")
def wipe_volume_job(ctx: JobContext) -> str:
    name, algorithm = ctx.job.volume_name, ctx.params["algorithm"]
    with job_connection(ctx, ctx.pool.name) as host:
        ctx.step("Checking that no virtual machine uses it")
        refuse_if_in_use(ctx, host, "wipe")
        _verified(ctx, host)
        ctx.step(f"Wiping {name} with {ops.WIPE_BY_NAME[algorithm].label}; libvirt reports no progress and "
                 "finishes even if asked to stop")
        info = ops.wipe_volume(host, ctx.pool.name, name, algorithm)
        safety.record_format(ctx.host, ctx.pool.name, name, info.format)  # a wiped qcow2 is a raw file
    return f"Wiped {name} with {algorithm}; it is now a {info.format or 'raw'} volume of {binary_size(info.capacity)}"
