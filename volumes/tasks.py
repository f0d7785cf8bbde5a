"""Job bodies of volume operations. They run in a Celery worker, never in a request.

Each opens its own libvirt connection for the operation (a long call blocks the
connection it runs on) and refreshes the inventory of the volumes it may have changed
(not the rest of their pools), whether the operation worked or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models import Subquery
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import Team
from hosts.signals import resync
from jobs.runner import JobContext, job_task
from pools.models import StoragePool
from virtstorage.virt import LibvirtHost, open_host
from virtstorage.virt import volumes as ops
from virtstorage.virt.units import binary_size

from . import safety
from .models import Volume, in_use_refusal

log = logging.getLogger(__name__)


class VolumeInUse(Exception):
    """A defined virtual machine has a disk on the volume."""


@contextmanager
def job_connection(ctx: JobContext, *volumes: tuple[str, str], vms: bool = False,
                   shared: bool = False) -> Iterator[LibvirtHost]:
    """A dedicated connection for the job, or with shared (a job whose libvirt calls are all short: the long
    work is qemu-img's) the worker process's own, open from its last job or sync: a connection costs ~15 ms here
    with a cold page cache, and an ssh handshake to a remote host. Afterwards, in any case (a failed job may have
    created or removed one), the inventory syncs these (pool, volume) pairs alone, not their pools' other
    volumes, and the host's VMs if vms."""
    ctx.step(_("Connecting to %(host)s") % {"host": ctx.host.name})
    try:
        with open_host(ctx.host.uri, shared=shared) as host:
            yield host
    except VolumeInUse:
        vms = True  # libvirt knows a VM on the volume that the inventory did not: the next form refuses at once
        raise
    finally:
        ctx.step(sync_step(volumes, vms=vms))
        resync(ctx.host, volumes=list(volumes), vms=vms)


def lead_to_volume(ctx: JobContext, pool_pk: int | None, name: str) -> None:
    """The job made (or wrote) volume name of the pool: its page links that volume once it succeeded. A job
    that made it for a team (params["team"]) records the volume as that team's: it counts against the team's
    quota from now on (volumes/quota.py)."""
    if pool_pk is None:
        return
    ctx.leads_to(reverse("volumes:by_name", args=[pool_pk, name]))
    if not (team := ctx.params.get("team")) or _set_team(pool_pk, name, team):
        return
    # The job's sync missed the volume (libvirt or the database failed it for a moment): once more, or the volume
    # would count against no quota.
    pool_name = StoragePool.objects.values_list("name", flat=True).get(pk=pool_pk)  # a pool of the job's host
    try:
        resync(ctx.host, volumes=[(pool_name, name)])
    except Exception:  # noqa: BLE001 - the volume is made: the job says what is left to do instead of failing
        log.exception("sync of %s/%s for its team", pool_name, name)
    if not _set_team(pool_pk, name, team):
        ctx.log_line(_("The inventory does not list %(pool)s/%(name)s yet: once a sync finds it, an admin says "
                       "on its page which team it belongs to.") % {"pool": pool_name, "name": name})


def _set_team(pool_pk: int, name: str, team: int) -> bool:
    """The volume's row records the team's id if the team still exists (a subquery: NULL when it was removed
    meanwhile); False when there is no row."""
    return bool(Volume.objects.filter(pool_id=pool_pk, name=name).update(
        team_id=Subquery(Team.objects.filter(pk=team).values("pk"))))


def sync_step(volumes: tuple[tuple[str, str], ...] | list[tuple[str, str]], *, vms: bool = False) -> str:
    """The job's step before its sync: what it updates, not more (a volume's sync reads no other volume)."""
    names = ", ".join(f"{pool}/{name}" for pool, name in dict.fromkeys(volumes))
    if names and vms:
        return _("Updating the inventory of %(volumes)s and of the host's VMs") % {"volumes": names}
    if names:
        return _("Updating the inventory of %(volumes)s") % {"volumes": names}
    return _("Updating the inventory of the host's VMs")


def _verified(ctx: JobContext, host: LibvirtHost) -> None:
    """The image check (volumes/safety.py) right before libvirt opens the volume."""
    ctx.step(_("Checking the image of %(volume)s (format, backing and data files)") % {"volume": ctx.job.volume_name})
    safety.verify(ctx.host, host, ctx.pool.name, ctx.job.volume_name)


def refuse_if_in_use(ctx: JobContext, host: LibvirtHost, action: str) -> None:
    """Refuse (VolumeInUse) when a defined VM has a disk on the job's volume, unless an admin forced it."""
    volume = host.volume(ctx.pool.name, ctx.job.volume_name)
    users = sorted(ops.volume_users(host, ctx.pool.name, volume))
    if users and ctx.params.get("force"):
        ctx.step(_("Used by virtual machine(s) %(vms)s; going ahead because an admin forced it")
                 % {"vms": ", ".join(users)})
    elif users:
        raise VolumeInUse(in_use_refusal(action, volume.name, users))


@job_task("create", name="volumes.tasks.create_volume_job")
def create_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    with job_connection(ctx, (ctx.pool.name, p["name"])) as host:
        if p["preallocation"] == "full":  # what takes its whole size at once (see check_room)
            ctx.step(_("Checking the free space of %(pool)s") % {"pool": ctx.pool.name})
            ops.check_room(host, ctx.pool.name, p["capacity"], reserve=ctx.pool.reserve_bytes)
            ctx.check_cancel()
        creating = (_("Creating %(format)s volume %(name)s of %(size)s (preallocating)")
                    if p["preallocation"] != "off" else _("Creating %(format)s volume %(name)s of %(size)s"))
        ctx.step(creating % {"format": p["format"], "name": p["name"], "size": binary_size(p["capacity"])})
        info = ops.create_volume(host, ctx.pool.name, p["name"], p["capacity"], fmt=p["format"],
                                 preallocation=p["preallocation"], backing_path=p.get("backing_path", ""),
                                 backing_format=p.get("backing_format", ""))
    lead_to_volume(ctx, ctx.pool.pk, info.name)
    return _("Created %(name)s: %(virtual)s virtual, %(disk)s on disk") % {
        "name": info.name, "virtual": binary_size(info.capacity), "disk": binary_size(info.allocation)}


@job_task("clone", name="volumes.tasks.clone_volume_job")
def clone_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    source, target_pool = ctx.job.volume_name, p["target_pool"]
    # The source is only read: the copy is the one volume that changes.
    with job_connection(ctx, (target_pool, p["name"])) as host, open_host(ctx.host.uri) as watcher:
        _verified(ctx, host)
        copying = (_("Copying %(source)s to %(pool)s/%(name)s as %(format)s; libvirt finishes a copy even if "
                     "asked to stop") if p.get("format") else
                   _("Copying %(source)s to %(pool)s/%(name)s; libvirt finishes a copy even if asked to stop"))
        ctx.step(copying % {"source": source, "pool": target_pool, "name": p["name"], "format": p.get("format")})
        info = ops.clone_volume(host, ctx.pool.name, source, target_pool, p["name"], fmt=p.get("format", ""),
                                watcher=watcher, on_progress=ctx.report)
    lead_to_volume(ctx, ctx.job.target_pool_id, info.name)
    return _("Cloned %(source)s to %(pool)s/%(name)s (%(format)s, %(disk)s on disk)") % {
        "source": source, "pool": target_pool, "name": info.name, "format": info.format,
        "disk": binary_size(info.allocation)}


@job_task("resize", name="volumes.tasks.resize_volume_job")
def resize_volume_job(ctx: JobContext) -> str:
    p = ctx.params
    name = ctx.job.volume_name
    with job_connection(ctx, (ctx.pool.name, name)) as host:
        _verified(ctx, host)
        if p.get("shrink"):
            ctx.step(_("Checking that no virtual machine uses it"))
            refuse_if_in_use(ctx, host, "shrink")
        ctx.check_cancel()
        if p.get("shrink"):
            resizing = (_("Shrinking %(name)s to %(size)s and allocating") if p.get("allocate")
                        else _("Shrinking %(name)s to %(size)s"))
        else:
            resizing = (_("Growing %(name)s to %(size)s and allocating") if p.get("allocate")
                        else _("Growing %(name)s to %(size)s"))
        ctx.step(resizing % {"name": name, "size": binary_size(p["capacity"])})
        info = ops.resize_volume(host, ctx.pool.name, name, p["capacity"], allocate=bool(p.get("allocate")),
                                 shrink=bool(p.get("shrink")))
    return _("Resized %(name)s to %(size)s (%(disk)s on disk)") % {
        "name": name, "size": binary_size(info.capacity), "disk": binary_size(info.allocation)}


@job_task("delete", name="volumes.tasks.delete_volume_job")
def delete_volume_job(ctx: JobContext) -> str:
    name = ctx.job.volume_name
    with job_connection(ctx, (ctx.pool.name, name)) as host:
        ctx.step(_("Checking that no virtual machine uses it"))
        refuse_if_in_use(ctx, host, "delete")
        ctx.check_cancel()
        ctx.step(_("Deleting %(name)s") % {"name": name})
        host.delete_volume(ctx.pool.name, name)
    ctx.leads_to(ctx.pool.get_absolute_url(), what="pool")  # where the volume was: its own page is gone
    return _("Deleted %(name)s from %(pool)s") % {"name": name, "pool": ctx.pool.name}


@job_task("wipe", name="volumes.tasks.wipe_volume_job")
def wipe_volume_job(ctx: JobContext) -> str:
    name, algorithm = ctx.job.volume_name, ctx.params["algorithm"]
    with job_connection(ctx, (ctx.pool.name, name)) as host:
        ctx.step(_("Checking that no virtual machine uses it"))
        refuse_if_in_use(ctx, host, "wipe")
        _verified(ctx, host)
        ctx.step(_("Wiping %(name)s with %(pattern)s; libvirt reports no progress and finishes even if asked to stop")
                 % {"name": name, "pattern": ops.WIPE_BY_NAME[algorithm].label})
        info = ops.wipe_volume(host, ctx.pool.name, name, algorithm)
        safety.record_format(ctx.host, ctx.pool.name, name, info.format)  # a wiped qcow2 is a raw file
    return _("Wiped %(name)s with %(pattern)s; it is now a %(format)s volume of %(size)s") % {
        "name": name, "pattern": ops.WIPE_BY_NAME[algorithm].label, "format": info.format or "raw",
        "size": binary_size(info.capacity)}
