"""Job bodies that attach and detach VM disks. They run in a Celery worker, never in a request.

Each opens a dedicated libvirt connection (a live detach waits on the guest) and re-syncs the inventory
afterwards, whatever happened: the host's VMs and their disks, which is all they change (no volume is
written, and whether a volume is in use is read from the disks).
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, ObjectNotFound
from virtstorage.virt import domains as vdomains
from virtstorage.virt.volumes import format_family
from volumes import safety
from volumes.models import Volume
from volumes.tasks import job_connection


def _domain(lv: LibvirtHost, ctx: JobContext) -> vdomains.DomainInfo:
    try:
        return vdomains.domain(lv, ctx.params["uuid"])
    except ObjectNotFound:
        raise ObjectNotFound(_("VM %(vm)s is no longer defined on %(host)s.")
                             % {"vm": ctx.params["domain"], "host": ctx.host.name}) from None


@job_task("vm-attach", name="vms.tasks.attach_disk_job")
def attach_disk_job(ctx: JobContext) -> str:
    p, pool, name = ctx.params, ctx.job.pool_name, ctx.job.volume_name
    with job_connection(ctx, vms=True) as lv:
        vm = _domain(lv, ctx)
        ctx.step(_("Checking the image of %(name)s (format, backing and data files)") % {"name": name})
        info = safety.verify(ctx.host, lv, pool, name)
        ctx.step(_("Checking which VMs have the volume"))
        uses = vdomains.volume_uses(lv.domains(), pool, name, info.path)
        refusal = vdomains.sharing_refusal(uses, domain_name=vm.name, readonly=p["readonly"], shareable=p["shareable"])
        if refusal:
            raise vdomains.DiskConflict(_("Refused: %(reason)s") % {"reason": refusal})
        recorded = Volume.objects.filter(pool__host=ctx.host, pool__name=pool, name=name).values_list(
            "recorded_format", flat=True).first()
        spec = vdomains.DiskSpec(pool=pool, volume=name, format=recorded or format_family(info.format), bus=p["bus"],
                                 target=p["target"], readonly=p["readonly"], shareable=p["shareable"], cache=p["cache"])
        values = {"pool": pool, "name": name, "vm": vm.name, "format": spec.format, "bus": spec.bus}
        ctx.step((_("Attaching %(pool)s/%(name)s to %(vm)s as a %(format)s %(bus)s disk (persistently and live: it "
                    "runs)") if vm.active else
                  _("Attaching %(pool)s/%(name)s to %(vm)s as a %(format)s %(bus)s disk (persistently: it is not "
                    "running)")) % values)
        change = vdomains.attach_volume(lv, vm.uuid, spec)
    return change.summary()


@job_task("vm-detach", name="vms.tasks.detach_disk_job")
def detach_disk_job(ctx: JobContext) -> str:
    p = ctx.params
    with job_connection(ctx, vms=True) as lv:
        vm = _domain(lv, ctx)
        values = {"target": p["target"], "vm": vm.name, "seconds": f"{p['timeout']:g}"}
        ctx.step((_("Detaching %(target)s from %(vm)s; waiting up to %(seconds)s s for the guest to release it")
                  if vm.active else _("Detaching %(target)s from %(vm)s")) % values)
        change = vdomains.detach_disk(lv, vm.uuid, p["target"], timeout=p["timeout"])
    return change.summary()
