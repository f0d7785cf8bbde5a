"""Pool lifecycle jobs: each step runs in a worker, then refreshes that pool's inventory.

Even quick steps are jobs: starting a netfs pool mounts an export, and a dead NFS
server makes that hang far longer than any request may take.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from hosts.signals import resync
from jobs.runner import JobContext, JobError, job_task, launch
from virtstorage.virt import HostUnreachable, LibvirtHost, VirtError, open_host
from virtstorage.virt import pools as vpools

from .models import StoragePool

# Lifecycle job kinds: one at a time per pool (the views refuse a second).
LIFECYCLE_KINDS = ("pool-define", "pool-build", "pool-start", "pool-stop", "pool-refresh", "pool-autostart",
                   "pool-delete", "pool-undefine")


def _operate(ctx: JobContext, operation: Callable[[LibvirtHost, str], str]) -> str:
    """Run operation(host, pool name) on a dedicated connection, then sync the pool whatever happened."""
    name = ctx.job.pool_name
    ctx.step(_("Connecting to %(uri)s") % {"uri": ctx.host.uri})
    try:
        # A dedicated connection: a mount or mkfs must not stall the process's other libvirt calls.
        with open_host(ctx.host.uri, shared=False) as lv:
            return operation(lv, name)
    finally:
        ctx.step(_("Updating the inventory"))
        resync(ctx.host, pool_names=[name])


def _check_sources(lv: LibvirtHost, name: str) -> None:
    """A build formats and a start mounts: only devices and groups set aside for pools, as libvirt has the pool
    now (whoever defined it)."""
    vpools.check_defined_sources(lv, name, settings.POOL_DEVICES, settings.POOL_GROUPS)


@job_task("pool-build", name="pools.tasks.build_pool_job")
def build_pool_job(ctx: JobContext) -> str:
    overwrite = bool(ctx.params.get("overwrite"))

    def build(lv: LibvirtHost, name: str) -> str:
        _check_sources(lv, name)
        if overwrite:
            ctx.step(_("Building %(pool)s with overwrite (libvirt reports no progress)") % {"pool": name})
        else:
            ctx.step(_("Building %(pool)s (libvirt reports no progress)") % {"pool": name})
        vpools.build_pool(lv, name, overwrite=overwrite)
        if overwrite:
            return _("Built pool %(pool)s, overwriting what was there") % {"pool": name}
        return _("Built pool %(pool)s") % {"pool": name}

    return _operate(ctx, build)


@job_task("pool-start", name="pools.tasks.start_pool_job")
def start_pool_job(ctx: JobContext) -> str:
    def start(lv: LibvirtHost, name: str) -> str:
        _check_sources(lv, name)
        if ctx.params.get("build"):
            ctx.step(_("Building %(pool)s (creating its storage if missing, never overwriting)") % {"pool": name})
            vpools.build_pool(lv, name, overwrite=False)
        ctx.step(_("Starting %(pool)s") % {"pool": name})
        try:
            lv.start_pool(name)
        except VirtError as exc:
            if "No such file or directory" not in str(exc):
                raise
            # A pool defined without "start now" was never built: say what to do, after libvirt's words.
            raise type(exc)(_("%(error)s. If the pool was never built, Build creates its storage first.")
                            % {"error": str(exc).rstrip(".")}, exc.code) from exc
        return _("Started pool %(pool)s: its volumes can be used") % {"pool": name}

    return _operate(ctx, start)


@job_task("pool-stop", name="pools.tasks.stop_pool_job")
def stop_pool_job(ctx: JobContext) -> str:
    def stop(lv: LibvirtHost, name: str) -> str:
        ctx.step(_("Stopping %(pool)s (libvirt: destroy); the data stays") % {"pool": name})
        vpools.stop_pool(lv, name)
        return _("Stopped pool %(pool)s; its data is intact and starting it again undoes this") % {"pool": name}

    return _operate(ctx, stop)


@job_task("pool-refresh", name="pools.tasks.refresh_pool_job")
def refresh_pool_job(ctx: JobContext) -> str:
    def refresh(lv: LibvirtHost, name: str) -> str:
        ctx.step(_("Rescanning %(pool)s for volumes") % {"pool": name})
        lv.refresh_pool(name)
        return _("Refreshed pool %(pool)s") % {"pool": name}

    return _operate(ctx, refresh)


@job_task("pool-autostart", name="pools.tasks.autostart_pool_job")
def autostart_pool_job(ctx: JobContext) -> str:
    enabled = bool(ctx.params.get("enabled"))

    def autostart(lv: LibvirtHost, name: str) -> str:
        if enabled:
            ctx.step(_("Turning autostart on for %(pool)s") % {"pool": name})
        else:
            ctx.step(_("Turning autostart off for %(pool)s") % {"pool": name})
        vpools.set_autostart(lv, name, enabled)
        if enabled:
            return _("Pool %(pool)s starts when libvirtd starts") % {"pool": name}
        return _("Pool %(pool)s no longer starts when libvirtd starts") % {"pool": name}

    return _operate(ctx, autostart)


@job_task("pool-delete", name="pools.tasks.delete_pool_job")
def delete_pool_job(ctx: JobContext) -> str:
    def delete(lv: LibvirtHost, name: str) -> str:
        count = vpools.delete_pool(lv, name, delete_volumes=bool(ctx.params.get("delete_volumes")), say=ctx.step)
        if count:
            return ngettext("Deleted pool %(pool)s and its %(count)s volume: its storage is gone and libvirt forgot it",
                            "Deleted pool %(pool)s and its %(count)s volumes: its storage is gone and libvirt forgot "
                            "it", count) % {"pool": name, "count": count}
        return _("Deleted pool %(pool)s: its storage is gone and libvirt forgot it") % {"pool": name}

    return _operate(ctx, delete)


@job_task("pool-undefine", name="pools.tasks.undefine_pool_job")
def undefine_pool_job(ctx: JobContext) -> str:
    def undefine(lv: LibvirtHost, name: str) -> str:
        vpools.undefine_pool(lv, name, say=ctx.step)
        return _("Undefined pool %(pool)s: libvirt forgot it, its storage and volumes are still there") % {"pool": name}

    return _operate(ctx, undefine)


@job_task("pool-define", name="pools.tasks.define_pool_job")
def define_pool_job(ctx: JobContext) -> str:
    """Define the pool from the XML the define form checked (params: xml, start_now), then sync it. Ticked
    "start now", it then launches the start job (build, then start) on the new pool, which its page follows."""
    name = ctx.job.pool_name
    ctx.step(_("Connecting to %(uri)s") % {"uri": ctx.host.uri})
    try:
        with open_host(ctx.host.uri, shared=False) as lv:
            ctx.step(_("Defining pool %(pool)s (libvirt checks the XML against its schema first)") % {"pool": name})
            vpools.define_pool(lv, ctx.params["xml"])
    except HostUnreachable:
        raise
    except VirtError as exc:
        raise VirtError(_("libvirt refused to define the pool: %(error)s") % {"error": exc}) from exc
    ctx.step(_("Updating the inventory"))
    resync(ctx.host, pool_names=[name])
    pool = StoragePool.objects.filter(host=ctx.host, name=name).first()
    if pool is None:
        raise VirtError(_("libvirt defined %(pool)s, but it did not show up in the inventory; sync the host.")
                        % {"pool": name})
    result = _("Defined pool %(pool)s. Build creates its storage; Start makes it usable.") % {"pool": name}
    if ctx.params.get("start_now"):
        # Its own job, launched before this one names the pool (else this job would block it): the pool's page
        # shows its progress.
        try:
            started = launch(start_pool_job, kind="pool-start", user=ctx.job.created_by, host=ctx.host, pool=pool,
                             params={"build": True})
            result = _("Defined pool %(pool)s; building and starting it as job #%(job)s.") % {
                "pool": name, "job": started.pk}
        except JobError as exc:
            result = _("Defined pool %(pool)s, but could not start it: %(error)s") % {"pool": name, "error": exc}
    ctx.job.pool = pool
    ctx.job.save(update_fields=["pool"])
    ctx.leads_to(pool.get_absolute_url())
    return result
