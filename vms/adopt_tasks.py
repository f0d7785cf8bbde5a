"""Job bodies of adopt (copy an unmanaged image into a new pool volume) and switch (a stopped VM's disk from
the file to that volume). They run in a Celery worker (settings.CELERY_IMPORTS names this module).

Adopt is the image tools' import (volumes/tools_tasks.py): the file is checked and opened by image_files (the
import roots, a regular file, the format from its content, a backing file only if it is a safe volume of the
pools) and qemu-img writes it into a new volume that libvirt created, holes kept, with its progress. Around
that: no link, no running VM writing to it, and the file must be the same, unwritten, after the copy.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from django.utils.translation import gettext as _

from jobs.runner import JobContext, job_task
from virtstorage.virt import LibvirtHost, disk_source, hostfiles
from virtstorage.virt import domains as vdomains
from virtstorage.virt.errors import InvalidRequest, OperationFailed
from virtstorage.virt.units import binary_size
from virtstorage.virt.volumes import format_family
from volumes import image_files, safety
from volumes.models import Volume
from volumes.tasks import job_connection, lead_to_volume
from volumes.tools_tasks import source_image, write_new_volume
from volumes.upload_job import remove_quietly


def _refuse_written(lv: LibvirtHost, paths: set[str]) -> None:
    """InvalidRequest when a running VM has one of the paths as a writable disk (libvirt's view, now)."""
    for vm in vdomains.list_domains(lv):
        for disk in vm.disks:
            if vm.active and disk.path in paths and not disk.readonly:
                raise InvalidRequest(_("VM %(vm)s is %(state)s and writes to %(path)s (%(target)s): a copy taken now "
                                       "would be inconsistent. Shut it off, then adopt.")
                                     % {"vm": vm.name, "state": _(vm.state), "path": disk.path, "target": disk.target})


@job_task("vm-adopt", name="vms.tasks.adopt_image_job")
def adopt_image_job(ctx: JobContext) -> str:
    p, pool_name = ctx.params, ctx.pool.name
    image_files.require_tools(ctx.host)
    with job_connection(ctx, (pool_name, p["name"]), shared=True) as lv, ExitStack() as stack:
        ctx.step(_("Checking %(path)s: inside the import roots, a regular file, not a link") % {"path": p["path"]})
        if (link := hostfiles.file_facts(p["path"])) is not None and link.kind == "symlink":
            raise InvalidRequest(_("%(path)s is a symbolic link (to %(target)s): adopt the file itself.")
                                 % {"path": p["path"], "target": link.link_target})
        source = image_files.open_import_file(p["path"])
        stack.callback(source.close)
        ctx.step(_("Checking that no running VM writes to it"))
        _refuse_written(lv, {p["path"], source.path})
        before = hostfiles.identity(os.fstat(source.fd))
        image, facts = source_image(ctx, lv, stack, source)
        info = write_new_volume(ctx, lv, image, source.virtual_size(facts), pool_name,
                                 {**p, "format": p.get("format") or facts.format})
        if hostfiles.file_identity(source.path) != before:
            remove_quietly(lv, pool_name, info.name)
            raise OperationFailed(_("%(path)s changed while it was copied (a VM or a program wrote to it): the copy "
                                    "was removed. Stop what writes to it, then adopt it again.")
                                  % {"path": source.path})
    ctx.keep(source_path=source.path, copied=before)  # what a switch checks
    lead_to_volume(ctx, ctx.pool.pk, info.name)
    result = (_("Adopted %(path)s (%(source_format)s) as %(pool)s/%(name)s: %(format)s, virtual size %(virtual)s, "
                "disk size %(disk)s.")
              % {"path": source.path, "source_format": facts.format, "pool": pool_name, "name": info.name,
                 "format": info.format, "virtual": binary_size(info.capacity), "disk": binary_size(info.allocation)})
    if p.get("target"):
        result += " " + (_("Switch %(target)s of %(vm)s to it on the VM's page while the VM is shut off.")
                         % {"target": p["target"], "vm": p["domain"]})
    return result


@job_task("vm-switch", name="vms.tasks.switch_disk_job")
def switch_disk_job(ctx: JobContext) -> str:
    p, pool_name, name = ctx.params, ctx.pool.name, ctx.job.volume_name
    with job_connection(ctx, vms=True) as lv:  # the volume is unchanged: the VM's disk is what changes
        ctx.step(_("Checking the image of %(name)s (format, backing and data files)") % {"name": name})
        info = safety.verify(ctx.host, lv, pool_name, name)
        recorded = Volume.objects.filter(pool__host=ctx.host, pool__name=pool_name, name=name).values_list(
            "recorded_format", flat=True).first()
        ctx.step(_("Checking that %(path)s was not written since it was copied (job #%(job)s)")
                 % {"path": p["source_path"], "job": p["adopt_job"]})
        if hostfiles.file_identity(p["source_path"]) != p["copied"]:
            raise InvalidRequest(_("%(path)s changed since it was copied into %(pool)s/%(name)s (did the VM run?): "
                                   "switching would lose those writes. Adopt it again, then switch.")
                                 % {"path": p["source_path"], "pool": pool_name, "name": name})
        ctx.step(_("Switching %(target)s of %(vm)s to %(pool)s/%(name)s in its persistent definition")
                 % {"target": p["target"], "vm": p["domain"], "pool": pool_name, "name": name})
        switched = disk_source.switch_disk_to_volume(lv, p["uuid"], p["target"], pool=pool_name, volume=name,
                                                     fmt=recorded or format_family(info.format),
                                                     expected_path=p["path"])
    return switched.summary()
