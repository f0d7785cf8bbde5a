"""Adopting an unmanaged image into a pool, and then switching the VM's disk to the new volume (admins).

Adopt is the image tools' import (volumes/image_files.py, tools_forms.ImportForm) into a pool the admin picks,
from a row of the unmanaged storage report: the same path rule (the import roots), the same content check, the
same qemu-img copy. What it adds: the file must not be a link, no running VM may write to it while it is
copied, the copy is refused if the file changed meanwhile, and the job remembers which VM disk the file was
(uuid, target) and the file's identity, so that the disk can later be switched to the volume: only while the
VM is shut off and only if the file was not written since (a VM that ran on it would lose those writes).
"""

from __future__ import annotations

from django import forms
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.log import refused
from hosts.models import Domain, Host
from jobs.models import Job
from jobs.runner import launch
from pools.models import StoragePool
from virtstorage.virt import hostfiles
from volumes.tools_forms import ImportForm

from . import adopt_tasks

ADOPT_KIND, SWITCH_KIND = "vm-adopt", "vm-switch"


class AdoptForm(ImportForm):
    """The import form with the pool to adopt into, and optionally the VM disk the file is."""

    audit_action = "vm.adopt"

    target_pool = forms.ModelChoiceField(queryset=StoragePool.objects.none(), label=gettext_lazy("Into pool"),
                                         help_text=gettext_lazy("A started pool of this host."))
    vm = forms.IntegerField(required=False, widget=forms.HiddenInput)
    target = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    field_order = ["path", "target_pool", "name", "format", "provisioning", "compress", "vm", "target"]

    def __init__(self, *args, host: Host, **kwargs) -> None:
        # ImportForm asks its pool for the host only until clean() knows the pool picked.
        super().__init__(*args, pool=StoragePool(host=host), **kwargs)
        self.host = host
        self.fields["target_pool"].queryset = StoragePool.objects.filter(host=host, state=StoragePool.State.ACTIVE)
        if self.initial.get("vm") or self.data.get("vm"):  # a VM disk's file: the path is the disk's
            self.fields["path"].widget.attrs["readonly"] = True

    def clean_path(self) -> str:
        text = self.cleaned_data["path"]
        if (link := hostfiles.file_facts(text)) is not None and link.kind == "symlink":  # the job checks again
            message = (_("%(path)s is a symbolic link (to %(target)s): adopt the file itself.")
                       % {"path": text, "target": link.link_target})
            refused(self.audit_action, message, target=text, target_type="volume")
            raise forms.ValidationError(message)
        return super().clean_path()

    def clean(self) -> dict:
        self.pool = self.cleaned_data.get("target_pool")
        if self.pool is None:
            return self.cleaned_data
        data = super().clean()
        if data.get("vm") is not None:
            data["disk_vm"] = self._check_disk(data)
        return data

    def _check_disk(self, data: dict) -> Domain | None:
        vm = Domain.objects.filter(host=self.host, pk=data["vm"]).first()
        disk = vm.disks.filter(target=data.get("target") or "").first() if vm else None
        if disk is None or disk.path != data.get("path"):
            raise forms.ValidationError(_("That VM has no such disk with this file (as of the last sync): start "
                                          "again from the unmanaged storage report."))
        if vm.is_active and not disk.readonly:
            raise forms.ValidationError(_("VM %(vm)s is %(state)s and writes to this file: a copy taken now would be "
                                          "inconsistent. Shut it off first.") % {"vm": vm.name, "state": _(vm.state)})
        return vm

    def job_params(self) -> dict:
        params = {**super().job_params(), "target_pool": self.cleaned_data["target_pool"].name}
        if vm := self.cleaned_data.get("disk_vm"):
            params.update(domain=vm.name, uuid=vm.uuid, target=self.cleaned_data["target"])
        return params


def start_adopt(*, user, request, form: AdoptForm) -> Job:
    """The adopt job, on the new volume's name in the target pool. Raises JobError (queue down, name busy)."""
    pool = form.cleaned_data["target_pool"]
    return launch(adopt_tasks.adopt_image_job, kind=ADOPT_KIND, user=user, request=request, host=pool.host,
                  pool=pool, volume_name=form.cleaned_data["name"], params=form.job_params(), cancellable=True)


def adopted_copies(vm: Domain) -> dict[str, Job]:
    """The newest succeeded adopt job of each disk of the VM (by target) that is still the file it copied."""
    paths = dict(vm.disks.exclude(path="").values_list("target", "path"))  # disks still on their file
    found: dict[str, Job] = {}
    for job in Job.objects.filter(kind=ADOPT_KIND, state=Job.State.SUCCEEDED, host=vm.host, params__uuid=vm.uuid,
                                  pool__isnull=False).select_related("pool"):
        target = job.params.get("target", "")
        if paths.get(target) == job.params.get("path"):
            found.setdefault(target, job)
    return found


def adopt_job_for(vm: Domain, target: str, job_pk: int) -> Job:
    """The succeeded adopt job job_pk of this VM's disk target, or 404."""
    return get_object_or_404(Job.objects.select_related("pool"), pk=job_pk, kind=ADOPT_KIND,
                             state=Job.State.SUCCEEDED, host=vm.host, params__uuid=vm.uuid, params__target=target,
                             pool__isnull=False)


def switch_refusal(vm: Domain, adopted: Job) -> str:
    """Why the switch cannot start now, from the inventory ("" when it may; the job asks libvirt again)."""
    if vm.is_active:
        return (_("VM %(vm)s is %(state)s: its disk is switched only while it is shut off.")
                % {"vm": vm.name, "state": _(vm.state)})
    if not vm.persistent:
        return _("VM %(vm)s is transient: it has no definition to change.") % {"vm": vm.name}
    if not adopted.pool.is_active:
        return (_("Pool %(pool)s is stopped: a VM reaches its volumes only while it runs.")
                % {"pool": adopted.pool.name})
    if "copied" not in adopted.params:
        return _("That copy does not say which file it was made from; adopt the disk again.")
    return ""


def start_switch(*, user, request, vm: Domain, adopted: Job) -> Job:
    """The switch job, on the adopted volume (no delete of it can run meanwhile)."""
    p = adopted.params
    params = {"domain": vm.name, "uuid": vm.uuid, "target": p["target"], "path": p["path"],
              "source_path": p["source_path"], "copied": p["copied"], "adopt_job": adopted.pk}
    return launch(adopt_tasks.switch_disk_job, kind=SWITCH_KIND, user=user, request=request, host=vm.host,
                  pool=adopted.pool, volume_name=adopted.volume_name, params=params)
