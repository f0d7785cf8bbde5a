"""Forms of the image tools (convert, import): checked here before any job starts; the job checks again."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.log import refused
from hosts.models import Host
from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.units import binary_size
from virtstorage.virt.volumes import FORMATS, format_family

from . import image_files
from .forms import FORMAT_CHOICES, PROVISIONING_CHOICES, VolumeNameField, offer_copy_pools
from .models import Volume
from .quota import ChargedForm
from .safety import refuse_unsafe


class _NewVolumeForm(forms.Form):
    """Where and how the new volume is written: name, format, provisioning, compression."""

    name = VolumeNameField(label=_("New volume's name"))
    format = forms.ChoiceField(choices=FORMAT_CHOICES, label=_("Format of the new volume"))
    provisioning = forms.ChoiceField(choices=PROVISIONING_CHOICES, initial="off", widget=forms.RadioSelect,
                                     label=_("Provisioning"))
    compress = forms.BooleanField(required=False, label=_("Compress (qcow2 only; slower, thin)"),
                                  help_text=_("qemu-img writes compressed clusters: smaller, read-only-style data "
                                              "(guest writes land uncompressed)."))

    warnings: list[str]

    def _check_target(self, data: dict, fmt: str, pool: StoragePool | None, host: Host, capacity: int,
                      allocation: int) -> None:
        provisioning, name = data.get("provisioning"), data.get("name")
        if provisioning == "metadata" and fmt != "qcow2":
            self.add_error("provisioning",
                           gettext("Metadata preallocation exists only for qcow2; choose thin or full."))
        if data.get("compress") and fmt != "qcow2":
            self.add_error("compress", gettext("Only a qcow2 volume can be compressed."))
        if data.get("compress") and provisioning != "off":
            self.add_error("compress", gettext("A compressed volume is thin: choose thin provisioning."))
        if reason := image_files.unavailable_reason(host):
            raise forms.ValidationError(reason)
        if pool is None or name is None or self.errors:
            return
        if not pool.is_active:
            self.add_error(None, gettext("Pool %(pool)s is stopped; start it first.") % {"pool": pool.name})
        elif Volume.objects.filter(pool=pool, name=name).exists():
            self.add_error("name", gettext("Pool %(pool)s already has a volume named %(name)s.")
                           % {"pool": pool.name, "name": name})
        else:
            try:
                self.warnings = check_volume_fits(pool, capacity=capacity, allocation=(
                    capacity if provisioning == "full" else allocation)).warnings
            except PolicyViolation as exc:
                self.add_error(None, str(exc))

    def job_params(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "format": data["format"], "provisioning": data["provisioning"],
                "compress": bool(data.get("compress"))}


class ConvertForm(_NewVolumeForm, ChargedForm):
    """Convert a volume into a new volume of a pool the user may use on the same host."""

    target_pool = forms.ModelChoiceField(queryset=StoragePool.objects.none(), label=_("Into pool"))
    field_order = ["name", "target_pool", "format", "provisioning", "compress"]

    def __init__(self, *args, volume: Volume, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.warnings = []
        offer_copy_pools(self.fields["target_pool"], volume, user)
        self.fields["format"].initial = "raw" if volume.recorded_format == "qcow2" else "qcow2"
        self.add_team_field(user)

    def clean(self) -> dict:
        data = super().clean()
        refuse_unsafe(self.volume)
        if (self.volume.recorded_format or format_family(self.volume.format)) not in FORMATS:
            # the formats named are FORMATS, in one sentence for the translation
            raise forms.ValidationError(
                gettext("Volume %(name)s is a %(format)s image: only raw and qcow2 images are converted.")
                % {"name": self.volume.name, "format": self.volume.format})
        self._check_target(data, data.get("format"), data.get("target_pool"), self.volume.pool.host,
                           self.volume.capacity, self.volume.allocation)
        if not self.errors:
            full = data["provisioning"] == "full"
            self.charge_to(data["target_pool"], count=1, capacity=self.volume.capacity,
                           allocation=self.volume.capacity if full else self.volume.allocation)
        return data

    def job_params(self) -> dict:
        return {**super().job_params(), "target_pool": self.cleaned_data["target_pool"].name}


class ImportForm(_NewVolumeForm):
    """An admin imports a file of the app's machine, from the import roots, into a new volume of the pool."""

    audit_action = "volume.import"  # a refused path or image is audited as this

    path = forms.CharField(label=_("File on the app's machine"), max_length=4096, strip=False,
                           help_text=_("Its absolute path. Its format is read from its content, never from its name."))
    field_order = ["path", "name", "format", "provisioning", "compress"]

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.warnings = []
        self.facts = None
        self.fields["format"].choices = [("", gettext("Keep the format its content has")), *FORMAT_CHOICES]
        self.fields["format"].required = False

    def clean_path(self) -> str:
        text = self.cleaned_data["path"]
        try:
            source = image_files.open_import_file(text)
        except ValueError as exc:
            refused(self.audit_action, str(exc), target=text, target_type="volume")
            raise forms.ValidationError(str(exc)) from exc
        try:  # the job checks the content again, and the backing chain against libvirt
            self.facts = source.inspect(lambda path: image_files.safe_volume_at(self.pool.host, path) is not None)
            self.virtual_size, self.disk_size = source.virtual_size(self.facts), source.size
        except UnsafeImage as exc:
            refused(self.audit_action, str(exc), target=text, target_type="volume")
            raise forms.ValidationError(gettext("Refused: %(reason)s") % {"reason": exc}) from exc
        finally:
            source.close()
        return text

    def clean(self) -> dict:
        data = super().clean()
        if self.facts is not None:  # "keep" is decided by the job, from the content it reads then
            self._check_target(data, data.get("format") or self.facts.format, self.pool, self.pool.host,
                               self.virtual_size, self.disk_size)
        return data

    def job_params(self) -> dict:
        return {**super().job_params(), "path": self.cleaned_data["path"], "format": self.cleaned_data["format"]}

    def describe(self) -> str:
        if self.facts is None:
            return ""
        return gettext("%(format)s image, virtual size %(size)s") % {
            "format": self.facts.format, "size": binary_size(self.virtual_size)}
