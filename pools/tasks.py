"""Pool lifecycle jobs: each step runs in a worker, then refreshes that pool's inventory.

Even quick steps are jobs: starting a netfs pool mounts an export, and a dead NFS
server makes that hang far longer than any request may take.
"""

from __future__ import annotations

from collections.abc import Callable

from hosts.signals import resync
from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, open_host
from virtstorage.virt import pools as vpools

# Lifecycle job kinds: one at a time per pool (the views refuse a second).
LIFECYCLE_KINDS = ("pool-build", "pool-start", "pool-stop", "pool-refresh", "pool-autostart", "pool-delete",
                   "pool-undefine")


def _operate(ctx: JobContext, operation: Callable[[LibvirtHost, str], str]) -> str:
    """Run operation(host, pool name) on a dedicated connection, then sync the pool whatever happened."""
    name = ctx.job.pool_name
    ctx.step(f"Connecting to {ctx.host.uri}")
    try:
        # A dedicated connection: a mount or mkfs must not stall the process's other libvirt calls.
        with open_host(ctx.host.uri, shared=False) as lv:
            return operation(lv, name)
    finally:
        ctx.step("Updating the inventory")
        resync(ctx.host, pool_names=[name])


@job_task("pool-build", name="pools.tasks.build_pool_job")
def build_pool_job(ctx: JobContext) -> str:
    overwrite = bool(ctx.params.get("overwrite"))

    def build(lv: LibvirtHost, name: str) -> str:
        ctx.step(f"Building {name}{' with overwrite' if overwrite else ''} (libvirt reports no progress)")
        vpools.build_pool(lv, name, overwrite=overwrite)
        return f"Built pool {name}" + (", overwriting what was there" if overwrite else "")

    return _operate(ctx, build)


@job_task("pool-start", name="pools.tasks.start_pool_job")
def start_pool_job(ctx: JobContext) -> str:
    def start(lv: LibvirtHost, name: str) -> str:
        if ctx.params.get("build"):
            ctx.step(f"Building {name} (creating its storage if missing, never overwriting)")
            vpools.build_pool(lv, name, overwrite=False)
        ctx.step(f"Starting {name}")
        lv.start_pool(name)
        return f"Started pool {name}: its volumes can be used"

    return _operate(ctx, start)


@job_task("pool-stop", name="pools.tasks.stop_pool_job")
def stop_pool_job(ctx: JobContext) -> str:
    def stop(lv: LibvirtHost, name: str) -> str:
        ctx.step(f"Stopping {name} (libvirt: destroy); the data stays")
        vpools.stop_pool(lv, name)
        return f"Stopped pool {name}; its data is intact and starting it again undoes this"

    return _operate(ctx, stop)


@job_task("pool-refresh", name="pools.tasks.refresh_pool_job")
def refresh_pool_job(ctx: JobContext) -> str:
    def refresh(lv: LibvirtHost, name: str) -> str:
        ctx.step(f"Rescanning {name} for volumes")
        lv.refresh_pool(name)
        return f"Refreshed pool {name}"

    return _operate(ctx, refresh)


@job_task("pool-autostart", name="pools.tasks.autostart_pool_job")
def autostart_pool_job(ctx: JobContext) -> str:
    enabled = bool(ctx.params.get("enabled"))

    def autostart(lv: LibvirtHost, name: str) -> str:
        ctx.step(f"Turning autostart {'on' if enabled else 'off'} for {name}")
        vpools.set_autostart(lv, name, enabled)
        return f"Pool {name} {'starts' if enabled else 'no longer starts'} when libvirtd starts"

    return _operate(ctx, autostart)


@job_task("pool-delete", name="pools.tasks.delete_pool_job")
def delete_pool_job(ctx: JobContext) -> str:
    def delete(lv: LibvirtHost, name: str) -> str:
        count = vpools.delete_pool(lv, name, delete_volumes=bool(ctx.params.get("delete_volumes")), say=ctx.step)
        volumes = f" and its {count} volume{'s' if count != 1 else ''}" if count else ""
        return f"Deleted pool {name}{volumes}: its storage is gone and libvirt forgot it"

    return _operate(ctx, delete)


@job_task("pool-undefine", name="pools.tasks.undefine_pool_job")
def undefine_pool_job(ctx: JobContext) -> str:
    def undefine(lv: LibvirtHost, name: str) -> str:
        vpools.undefine_pool(lv, name, say=ctx.step)
        return f"Undefined pool {name}: libvirt forgot it, its storage and volumes are still there"

    return _operate(ctx, undefine)
