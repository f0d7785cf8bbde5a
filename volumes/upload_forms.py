"""The upload forms: the upload page's query, and an upload's file, target and size, checked before any byte
is staged (the same checks as a new volume: volumes/forms.py)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import access
from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.units import binary_size, parse_size

from .forms import FORMAT_CHOICES, VolumeNameField
from .models import Upload, Volume, in_use_refusal
from .quota import ChargedForm
from .safety import refuse_unsafe


class UploadPageQuery(forms.Form):
    """The upload page's query: ?pool=N for a new volume, or ?volume=N to replace one."""

    pool = forms.IntegerField(min_value=1, required=False)
    volume = forms.IntegerField(min_value=1, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("pool") and not data.get("volume"):
            raise forms.ValidationError(gettext("Give ?pool=N (a new volume) or ?volume=N (to replace it)."))
        return data


class UploadForm(ChargedForm):
    pool = forms.IntegerField(min_value=1)
    volume = VolumeNameField()
    mode = forms.ChoiceField(choices=Upload.Mode.choices, initial=Upload.Mode.NEW)
    size = forms.CharField(help_text=_("Bytes of the file."))
    capacity = forms.CharField(required=False,
                               help_text=_("Virtual size of a new raw volume; default: the file's size."))
    format = forms.ChoiceField(choices=[("", _("Read from the file's header")), *FORMAT_CHOICES], required=False,
                               help_text=_("What the file is; the file's header must agree."))
    confirm = forms.CharField(required=False, strip=False, help_text=_("To replace a volume, type its name."))
    force = forms.BooleanField(required=False, help_text=_("Replace even if a virtual machine uses it (admins only)."))
    filename = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, user, pool: StoragePool | None = None, **kwargs) -> None:
        """pool: the upload page's, to offer its teams; a posted upload names its pool in its data."""
        super().__init__(*args, **kwargs)
        self.add_team_field(user, pool)

    def clean_size(self) -> int:
        try:
            size = parse_size(self.cleaned_data["size"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if size <= 0:
            raise forms.ValidationError(gettext("The file is empty: there is nothing to upload."))
        return size

    def clean_capacity(self) -> int | None:
        text = self.cleaned_data.get("capacity")
        if text in (None, ""):
            return None
        try:
            return parse_size(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        pool = StoragePool.objects.visible_to(self.user).select_related("host").filter(pk=data["pool"]).first()
        if pool is None:
            self.add_error("pool", gettext("No such pool."))
            return data
        action = "replace" if data["mode"] == Upload.Mode.EXISTING else "upload"
        if not access.may(self.user, action, pool):
            needed = (gettext("To replace in pool %(pool)s you need to be an operator of a team that may use it.")
                      if action == "replace" else
                      gettext("To upload in pool %(pool)s you need to be a member of a team that may use it."))
            self.add_error("mode", needed % {"pool": pool.name})
            return data
        if not pool.is_active or not pool.host.enabled:
            self.add_error("pool", gettext("Pool %(pool)s is not running: start it before uploading into it.")
                           % {"pool": pool.name})
            return data
        data["pool"] = pool
        if data["mode"] == Upload.Mode.EXISTING:
            self._clean_replace(data, pool)
        else:
            self._clean_new(data, pool)
        return data

    def _clean_replace(self, data: dict, pool: StoragePool) -> None:
        name, size = data["volume"], data["size"]
        existing = Volume.objects.filter(pool=pool, name=name).first()
        if existing is None:
            self.add_error("volume", gettext("Pool %(pool)s has no volume %(name)s.")
                           % {"pool": pool.name, "name": name})
            return
        try:
            refuse_unsafe(existing)
        except forms.ValidationError as exc:
            self.add_error("volume", exc)
        if size > existing.capacity:
            self.add_error("size", gettext("The file (%(size)s, %(bytes)s bytes) is larger than volume %(name)s "
                                           "(%(capacity)s, %(capacity_bytes)s bytes).")
                           % {"size": binary_size(size), "bytes": size, "name": name,
                              "capacity": binary_size(existing.capacity), "capacity_bytes": existing.capacity})
        if data.get("confirm") != name:
            self.add_error("confirm", gettext("Replacing %(name)s erases what it holds: type its name to confirm.")
                           % {"name": name})
        data["force"] = bool(data.get("force")) and access.may(self.user, "force", pool)
        if not data["force"] and (refusal := in_use_refusal("replace", name, existing.vm_names())):
            self.add_error("volume", refusal)  # as of the last sync; the job asks libvirt again
        data["capacity"] = existing.capacity if existing.format == "raw" else size

    def _clean_new(self, data: dict, pool: StoragePool) -> None:
        name, size = data["volume"], data["size"]
        data["force"] = False
        if Volume.objects.filter(pool=pool, name=name).exists():
            self.add_error("volume", gettext("Pool %(pool)s already has a volume %(name)s: choose another name, "
                                             "or replace it.") % {"pool": pool.name, "name": name})
            return
        capacity = data.get("capacity") or size
        if capacity < size:
            self.add_error("capacity", gettext("The capacity (%(capacity)s) is smaller than the file (%(size)s).")
                           % {"capacity": binary_size(capacity), "size": binary_size(size)})
            return
        try:
            check_volume_fits(pool, capacity=capacity, allocation=0)
        except PolicyViolation as exc:
            self.add_error("capacity" if data.get("capacity") else "size", str(exc))
            return
        data["capacity"] = capacity
        self.charge_to(pool, count=1, capacity=capacity)
