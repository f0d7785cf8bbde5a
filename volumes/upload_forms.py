"""The upload forms: the upload page's query, and an upload's file, target and size, checked before any byte
is staged (the same checks as a new volume: volumes/forms.py)."""

from __future__ import annotations

from django import forms

from accounts import access
from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.units import binary_size, parse_size

from .forms import FORMAT_CHOICES, VolumeNameField
from .models import Upload, Volume, in_use_refusal
from .safety import refuse_unsafe


class UploadPageQuery(forms.Form):
    """The upload page's query: ?pool=N for a new volume, or ?volume=N to replace one."""

    pool = forms.IntegerField(min_value=1, required=False)
    volume = forms.IntegerField(min_value=1, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("pool") and not data.get("volume"):
            raise forms.ValidationError("Give ?pool=N (a new volume) or ?volume=N (to replace it).")
        return data


class UploadForm(forms.Form):
    pool = forms.IntegerField(min_value=1)
    volume = VolumeNameField()
    mode = forms.ChoiceField(choices=Upload.Mode.choices, initial=Upload.Mode.NEW)
    size = forms.CharField(help_text="Bytes of the file.")
    capacity = forms.CharField(required=False, help_text="Virtual size of a new raw volume; default: the file's size.")
    format = forms.ChoiceField(choices=[("", "Read from the file's header"), *FORMAT_CHOICES], required=False,
                               help_text="What the file is; the file's header must agree.")
    confirm = forms.CharField(required=False, strip=False, help_text="To replace a volume, type its name.")
    force = forms.BooleanField(required=False, help_text="Replace even if a virtual machine uses it (admins only).")
    filename = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_size(self) -> int:
        try:
            size = parse_size(self.cleaned_data["size"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if size <= 0:
            raise forms.ValidationError("The file is empty: there is nothing to upload.")
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
            self.add_error("pool", "No such pool.")
            return data
        action = "replace" if data["mode"] == Upload.Mode.EXISTING else "upload"
        if not access.may(self.user, action, pool):
            self.add_error("mode", f"To {action} in pool {pool.name} you need to be "
                                   f"{'an operator' if action == 'replace' else 'a member'} of a team that may use it.")
            return data
        if not pool.is_active or not pool.host.enabled:
            self.add_error("pool", f"Pool {pool.name} is not running: start it before uploading into it.")
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
            self.add_error("volume", f"Pool {pool.name} has no volume {name}.")
            return
        try:
            refuse_unsafe(existing)
        except forms.ValidationError as exc:
            self.add_error("volume", exc)
        if size > existing.capacity:
            self.add_error("size", f"The file ({binary_size(size)}, {size} bytes) is larger than volume {name} "
                                   f"({binary_size(existing.capacity)}, {existing.capacity} bytes).")
        if data.get("confirm") != name:
            self.add_error("confirm", f"Replacing {name} erases what it holds: type its name to confirm.")
        data["force"] = bool(data.get("force")) and access.may(self.user, "force", pool)
        if not data["force"] and (refusal := in_use_refusal("replace", name, existing.vm_names())):
            self.add_error("volume", refusal)  # as of the last sync; the job asks libvirt again
        data["capacity"] = existing.capacity if existing.format == "raw" else size

    def _clean_new(self, data: dict, pool: StoragePool) -> None:
        name, size = data["volume"], data["size"]
        data["force"] = False
        if Volume.objects.filter(pool=pool, name=name).exists():
            self.add_error("volume", f"Pool {pool.name} already has a volume {name}: choose another name, "
                                     "or replace it.")
            return
        capacity = data.get("capacity") or size
        if capacity < size:
            self.add_error("capacity", f"The capacity ({binary_size(capacity)}) is smaller than the file "
                                       f"({binary_size(size)}).")
            return
        try:
            check_volume_fits(pool, capacity=capacity, allocation=0)
        except PolicyViolation as exc:
            self.add_error("capacity" if data.get("capacity") else "size", str(exc))
        data["capacity"] = capacity
