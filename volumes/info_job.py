"""The Image panel's report as a job: ``qemu-img info`` of a volume and of each file of its backing chain, beside
libvirt's capacity and allocation, kept on the job (``params["report"]``) for the panel to show
(views_tools.image_panel). No page runs qemu-img or asks libvirt itself.

Right before qemu-img runs, the job checks and opens every file of the chain as the other image tools do
(image_files.open_chain: volumes/safety.py's check, descriptors handed to qemu-img with each format stated), so
qemu-img opens those and nothing an image names.
"""

from __future__ import annotations

import dataclasses
import time

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from jobs.models import Job, JobQuerySet
from jobs.runner import JobContext, job_task, launch
from virtstorage.virt import open_host, qemuimg
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.units import binary_size

from . import image_files
from .models import Volume

INFO_KIND = "info"


def _facts(info: qemuimg.ImageInfo) -> dict:
    """One file's qemu-img info as JSON-safe values, with the provisioning the panel explains."""
    return {**dataclasses.asdict(info), "provisioning": info.provisioning}


@job_task(INFO_KIND, name="volumes.info_job.image_info_job")
def image_info_job(ctx: JobContext) -> str:
    name = ctx.job.volume_name
    image_files.require_tools(ctx.host)
    deadline = time.monotonic() + qemuimg.INFO_TIMEOUT_SECONDS  # for the whole chain, not each file
    ctx.step(_("Checking the image of %(name)s and its backing chain (format, backing and data files), opening it")
             % {"name": name})
    try:
        with open_host(ctx.host.uri) as lv, \
                image_files.open_chain(ctx.host, lv, ctx.pool.name, name) as chain:
            ctx.step(ngettext("Running qemu-img info on %(count)s file", "Running qemu-img info on %(count)s files",
                              len(chain.links)) % {"count": len(chain.links)})
            infos = [qemuimg.info(chain.image(index, with_backing=False),
                                  timeout=max(1.0, deadline - time.monotonic())) for index in range(len(chain.links))]
    except UnsafeImage:
        ctx.keep(refused=True)  # the panel says "refused", not "could not read"
        raise
    top, live = infos[0], chain.links[0].info
    ctx.keep(report={
        "info": _facts(top), "live": {"capacity": live.capacity, "allocation": live.allocation},
        "chain": [{"pool_name": link.pool_name, "name": link.name, "info": _facts(info)}
                  for link, info in zip(chain.links[1:], infos[1:], strict=True)]})
    summary = (ngettext("%(name)s: %(format)s, virtual size %(virtual)s, disk size %(disk)s, backed by %(count)s "
                        "file", "%(name)s: %(format)s, virtual size %(virtual)s, disk size %(disk)s, backed by "
                        "%(count)s files", len(infos) - 1)
               if len(infos) > 1 else _("%(name)s: %(format)s, virtual size %(virtual)s, disk size %(disk)s"))
    return summary % {"name": name, "format": top.format, "virtual": binary_size(top.virtual_size),
                      "disk": binary_size(top.disk_size), "count": len(infos) - 1}


def info_jobs(volume: Volume) -> JobQuerySet:
    """The volume's info jobs, newest first (everyone's: the report is the volume's, not its reader's)."""
    return Job.objects.filter(kind=INFO_KIND, pool=volume.pool, volume_name=volume.name)


def start_info(volume: Volume, *, user, request=None) -> Job:
    """Launch the volume's info job: a read, which runs beside downloads (jobs.runner.SHARED_KINDS) but waits for
    no job that changes the volume. Raises JobError (queue down, volume busy)."""
    return launch(image_info_job, kind=INFO_KIND, user=user, host=volume.pool.host, pool=volume.pool,
                  volume_name=volume.name, request=request)
