"""The image tools' jobs, once for the pages and the REST API: whether a volume can be checked, and the job each
tool starts (its task and the Job's fields, as jobs.runner.launch takes them) from a volume or pool and a valid
form (tools_forms). No libvirt call and no qemu-img here: the job checks everything again and does the work.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from jobs.models import Job
from jobs.runner import launch
from pools.models import StoragePool

from . import image_files, tools_tasks
from .models import Volume
from .quota import launch_fields
from .tools_forms import ConvertForm, ImportForm


def info_refusal(volume: Volume) -> dict[str, str]:
    """Why qemu-img info cannot read the volume now ({} when it can), from what the app knows, keyed by kind:
    "unavailable" (the host or pool cannot) or "refused" (the image check refused the image)."""
    if reason := image_files.unavailable_reason(volume.pool.host):
        return {"unavailable": reason}
    if volume.unsafe_reason:
        return {"refused": volume.unsafe_reason}
    if not volume.pool.is_active:
        return {"unavailable": _("Pool %(pool)s is stopped: start it to read its images.") % {"pool": volume.pool.name}}
    return {}


def check_refusal(volume: Volume) -> str:
    """Why qemu-img check cannot run on the volume ("" when it can), from what the inventory knows."""
    refusal = volume.unsafe_reason or image_files.unavailable_reason(volume.pool.host)
    if not refusal and (volume.recorded_format or volume.format) != "qcow2":
        refusal = _("%(volume)s is a %(format)s volume: only qcow2 images have metadata to check.") % {
            "volume": volume.name, "format": volume.format or "raw"}
    return refusal


def check_job(volume: Volume) -> dict:
    """qemu-img check of the volume (read only): check_refusal first."""
    return {"task": tools_tasks.check_image_job, "kind": "check", "host": volume.pool.host, "pool": volume.pool,
            "volume_name": volume.name, "cancellable": True}


def convert_job(volume: Volume, form: ConvertForm) -> dict:
    """Convert the volume into the new volume a valid ConvertForm names (held busy while the job writes it)."""
    return {"task": tools_tasks.convert_volume_job, "kind": "convert", "host": volume.pool.host,
            "pool": volume.pool, "volume_name": volume.name, "cancellable": True,
            "target_pool": form.cleaned_data["target_pool"], "target_volume_name": form.cleaned_data["name"],
            **launch_fields(form.job_params(), form.charge)}


def import_job(pool: StoragePool, form: ImportForm) -> dict:
    """Import the host file a valid ImportForm names into a new volume of the pool."""
    return {"task": tools_tasks.import_image_job, "kind": "import", "host": pool.host, "pool": pool,
            "volume_name": form.cleaned_data["name"], "params": form.job_params(), "cancellable": True}


def start(job: dict, *, user, request=None) -> Job:
    """Launch one of the jobs above. Raises JobError (queue down, volume or pool busy)."""
    return launch(user=user, request=request, **job)
