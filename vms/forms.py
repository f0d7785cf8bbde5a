"""Forms to attach a volume to a VM (from the VM's page, or from the volume's) and to set a VM's team.

Everything the inventory can tell is checked here, before a job starts: the volume is safe and its pool
started, the target device is free, and no other VM holds the volume in a way that forbids one more
(virt.domains.sharing_refusal, which the job asks again against libvirt).
"""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import access
from accounts.models import Team
from hosts.models import Domain
from pools.models import StoragePool
from virtstorage.virt.domains import CACHE_MODES, TARGET_PREFIX, sharing_refusal
from volumes.models import Volume
from volumes.widgets import VolumeNameInput

BUS_CHOICES = [
    ("virtio", gettext_lazy("virtio: fastest; a running VM needs a free PCIe port for it")),
    ("scsi", gettext_lazy("scsi: on the VM's SCSI controller (virtio-scsi); hotplugs anywhere")),
    ("sata", gettext_lazy("sata: no hotplug, so a running VM sees it from its next start")),
]
CACHE_CHOICES = [("", gettext_lazy("the hypervisor's default")), *((mode, mode) for mode in CACHE_MODES)]
TARGET = re.compile(r"(vd|sd)[a-z]{1,2}")


class DiskOptionsForm(forms.Form):
    """How the guest sees the disk; the part both attach forms share."""

    bus = forms.ChoiceField(choices=BUS_CHOICES, initial="virtio", label=gettext_lazy("Bus"))
    target = forms.CharField(
        required=False, max_length=8, label=gettext_lazy("Target device"),
        help_text=gettext_lazy("The guest's device name, e.g. vdb or sdc. Empty: the first free one for the bus."))
    readonly = forms.BooleanField(required=False, label=gettext_lazy("Read-only"))
    shareable = forms.BooleanField(
        required=False, label=gettext_lazy("Shareable"),
        help_text=gettext_lazy("Several VMs may write it at once (a cluster file system); every other VM that has the "
                               "volume must have it shareable too."))
    cache = forms.ChoiceField(choices=CACHE_CHOICES, required=False, label=gettext_lazy("Cache"))

    def clean_target(self) -> str:
        target = self.cleaned_data["target"]
        if target and not TARGET.fullmatch(target):
            raise forms.ValidationError(_("A target device is vd or sd and one or two letters, e.g. vdb or sdc."))
        return target

    def clean(self) -> dict:
        data = super().clean()
        if data.get("bus") == "sata" and data.get("readonly"):
            self.add_error("readonly", _("libvirt refuses read-only sata disks: use virtio or scsi for a read-only "
                                         "disk."))
        return data

    def check_disk(self, vm: Domain, volume: Volume) -> None:
        """The inventory's view: errors on the form for everything that would be refused."""
        data = self.cleaned_data
        if volume.unsafe_reason:
            raise forms.ValidationError(_("Refused: %(reason)s Only an admin can delete this volume.")
                                        % {"reason": volume.unsafe_reason})
        if not volume.pool.is_active:
            raise forms.ValidationError(_("Pool %(pool)s is stopped: a VM reaches its volumes only while it runs. "
                                          "Start the pool first.") % {"pool": volume.pool.name})
        target, bus = data.get("target"), data.get("bus")
        if target and bus and not target.startswith(TARGET_PREFIX[bus]):
            self.add_error("target", _("A %(bus)s disk's name starts with %(prefix)s.")
                           % {"bus": bus, "prefix": TARGET_PREFIX[bus]})
        if target and vm.disks.filter(target=target).exists():
            self.add_error("target", _("%(vm)s already has a disk %(target)s.") % {"vm": vm.name, "target": target})
        users = [(disk.domain, disk) for disk in volume.users()]
        refusal = sharing_refusal(users, domain_name=vm.name, readonly=bool(data.get("readonly")),
                                  shareable=bool(data.get("shareable")))
        if refusal:
            raise forms.ValidationError(_("Refused: %(reason)s") % {"reason": refusal})

    def job_params(self, vm: Domain, volume: Volume) -> dict:
        data = self.cleaned_data
        return {"domain": vm.name, "uuid": vm.uuid, "bus": data["bus"], "target": data["target"],
                "readonly": data["readonly"], "shareable": data["shareable"], "cache": data["cache"],
                "volume_id": volume.pk}


class AttachVolumeForm(DiskOptionsForm):
    """On a VM's page: a volume of one of the host's started pools, by pool and volume name."""

    pool = forms.ModelChoiceField(
        queryset=StoragePool.objects.none(), required=False, label=gettext_lazy("Pool"),
        empty_label=gettext_lazy("the one that holds the volume"),
        help_text=gettext_lazy("Started pools of this host where you may create volumes. Left to the volume's name, "
                               "it is the one pool of these that has a volume of that name."))
    volume = forms.CharField(label=gettext_lazy("Volume name"), max_length=255, strip=False,
                             widget=VolumeNameInput(list_id="attach-volume-names", pool_field="pool"))
    field_order = ["pool", "volume", "bus", "target", "readonly", "shareable", "cache"]

    def __init__(self, *args, vm: Domain, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vm = vm
        pools = StoragePool.objects.visible_to(user).filter(host=vm.host, state=StoragePool.State.ACTIVE)
        allowed = [p.pk for p in pools if access.may(user, "create", p)]
        self.fields["pool"].queryset = pools.filter(pk__in=allowed)
        if len(allowed) == 1:
            self.fields["pool"].initial = allowed[0]  # the only choice, made
        # Said on the page only (the API's schema reads the class's fields, without it).
        self.fields["volume"].help_text = _("Volumes are suggested as you type, with their pool when none is chosen "
                                            "(as of the last sync).")
        self.fields["volume"].widget.for_host(vm.host_id)

    def clean(self) -> dict:
        data = super().clean()
        name = data.get("volume")
        volume = self._volume(data.get("pool"), name) if name and not self.has_error("pool") else None
        if volume is not None:
            self.check_disk(self.vm, volume)
            data["volume_row"], data["pool"] = volume, volume.pool
        return data

    def _volume(self, pool: StoragePool | None, name: str) -> Volume | None:
        """The volume of that name in the pool chosen or, with none chosen, in the one allowed pool that has it;
        None, with the reason on the form, when there is no such one volume."""
        pools = self.fields["pool"].queryset if pool is None else StoragePool.objects.filter(pk=pool.pk)
        found = list(Volume.objects.filter(pool__in=pools, name=name).select_related("pool").order_by("pool__name"))
        if len(found) == 1:
            return found[0]
        if pool is not None:
            self.add_error("volume", _("Pool %(pool)s has no volume %(name)s (as of its last sync).")
                           % {"pool": pool.name, "name": name})
        elif not found:
            self.add_error("volume", _("No pool of this host that you may use has a volume %(name)s (as of the "
                                       "last sync).") % {"name": name})
        else:
            self.add_error("pool", _("%(name)s is in pools %(pools)s: choose one.")
                           % {"name": name, "pools": ", ".join(volume.pool.name for volume in found)})
        return None


class AttachToVmForm(DiskOptionsForm):
    """On a volume's page: one of the host's VMs whose disks the user may change."""

    vm = forms.ModelChoiceField(queryset=Domain.objects.none(), label=gettext_lazy("Virtual machine"))
    field_order = ["vm", "bus", "target", "readonly", "shareable", "cache"]

    def __init__(self, *args, volume: Volume, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.fields["vm"].queryset = (Domain.objects.visible_to(user).changeable_by(user)
                                      .filter(host_id=volume.pool.host_id).select_related("host"))
        self.fields["vm"].label_from_instance = (
            lambda vm: f"{vm.name} ({_(vm.state) if vm.state else _('unknown state')})")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("vm") is not None:
            self.check_disk(data["vm"], self.volume)
        return data


class TeamForm(forms.ModelForm):
    """An admin sets the team that owns a VM."""

    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False, label=gettext_lazy("Team"),
                                  empty_label=gettext_lazy("no team (admins only)"))

    class Meta:
        model = Domain
        fields = ["team"]
