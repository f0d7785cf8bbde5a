"""Job bodies that attach and detach VM disks. They run in a Celery worker, never in a request.

Each opens a dedicated libvirt connection (a live detach waits on the guest) and re-syncs the inventory
afterwards, whatever happened: the pool of the volume, and the host's VMs with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hosts.signals import resync
from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, ObjectNotFound, open_host
from virtstorage.virt import domains as vdomains
from virtstorage.virt.volumes import format_family
from volumes import safety
from volumes.models import Volume


@contextmanager
def _connection(ctx: JobContext) -> Iterator[LibvirtHost]:
    ctx.step(f"Connecting to {ctx.host.name}")
    try:
        with open_host(ctx.host.uri, shared=False) as lv:
            yield lv
    finally:
        ctx.step("Refreshing the inventory")
        resync(ctx.host, pool_names=[ctx.job.pool_name] if ctx.job.pool_name else [])


def _domain(lv: LibvirtHost, ctx: JobContext) -> vdomains.DomainInfo:
    try:
        return vdomains.domain(lv, ctx.params["uuid"])
    except ObjectNotFound:
        raise ObjectNotFound(f"VM {ctx.params['domain']} is no longer defined on {ctx.host.name}.") from None


@job_task("vm-attach", name="vms.tasks.attach_disk_job")
def attach_disk_job(ctx: JobContext) -> str:
    p, pool, name = ctx.params, ctx.job.pool_name, ctx.job.volume_name
    with _connection(ctx) as lv:
        vm = _domain(lv, ctx)
        ctx.step(f"Checking the image of {name} (format, backing and data files)")
        info = safety.verify(ctx.host, lv, pool, name)
        ctx.step("Checking which VMs have the volume")
        uses = vdomains.volume_uses(lv.domains(), pool, name, info.path)
        refusal = vdomains.sharing_refusal(uses, domain_name=vm.name, readonly=p["readonly"], shareable=p["shareable"])
        if refusal:
            raise vdomains.DiskConflict(f"Refused: {refusal}")
        recorded = Volume.objects.filter(pool__host=ctx.host, pool__name=pool, name=name).values_list(
            "recorded_format", flat=True).first()
        spec = vdomains.DiskSpec(pool=pool, volume=name, format=recorded or format_family(info.format), bus=p["bus"],
                                 target=p["target"], readonly=p["readonly"], shareable=p["shareable"], cache=p["cache"])
        ctx.step(f"Attaching {pool}/{name} to {vm.name} as a {spec.format} {spec.bus} disk"
                 + (" (persistently and live: it runs)" if vm.active else " (persistently: it is not running)"))
        change = vdomains.attach_volume(lv, vm.uuid, spec)
    return change.summary()


@job_task("vm-detach", name="vms.tasks.detach_disk_job")
def detach_disk_job(ctx: JobContext) -> str:
    p = ctx.params
    with _connection(ctx) as lv:
        vm = _domain(lv, ctx)
        wait = f"; waiting up to {p['timeout']:g} s for the guest to release it" if vm.active else ""
        ctx.step(f"Detaching {p['target']} from {vm.name}{wait}")
        change = vdomains.detach_disk(lv, vm.uuid, p["target"], timeout=p["timeout"])
    return change.summary()
