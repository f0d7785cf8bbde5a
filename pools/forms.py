"""Forms of a defined pool's lifecycle and policy: build, delete, capacity policy (define: define_forms.py)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from hosts.forms import ConfirmNameForm
from virtstorage.virt import pools as vpools
from virtstorage.virt.units import UNITS_HELP, exact_size_text, parse_size

from .models import StoragePool


class PoolConfirmForm(ConfirmNameForm):
    """Type the pool's name to confirm a destructive step (only where the step needs it)."""

    confirm_field = "confirm_name"

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        super().__init__(*args, name=pool.name, what="pool", required=False, **kwargs)
        self.pool = pool


class DeletePoolForm(PoolConfirmForm):
    delete_volumes = forms.BooleanField(required=False)

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        super().__init__(*args, pool=pool, **kwargs)
        count = pool.volume_count
        self.fields["delete_volumes"].label = (
            f"Also delete its {count} volume{'s' if count != 1 else ''} and all their data" if count
            else "Also delete any volumes it holds (it had none at the last sync)")

    def clean(self) -> dict:
        data = super().clean()
        self.require_name()
        if self.pool.volume_count and not data.get("delete_volumes"):
            self.add_error("delete_volumes", f"Pool {self.pool.name} holds {self.pool.volume_count} volume(s): "
                                             "tick this to delete them too, or delete them first.")
        return data


class BuildPoolForm(PoolConfirmForm):
    overwrite = forms.BooleanField(
        required=False, label="Overwrite: format the device even if it already holds data",
        help_text="Without this, libvirt refuses to build over an existing file system, label or volume group.")

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        super().__init__(*args, pool=pool, **kwargs)
        if pool.type not in vpools.FORMATTING_TYPES:
            # Nothing to format: building a directory or mount point never overwrites anything.
            del self.fields["overwrite"], self.fields["confirm_name"]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("overwrite"):
            self.require_name()
        return data


class PolicyForm(forms.ModelForm):
    reserve = forms.CharField(label="Reserve", max_length=40, required=False,
                              help_text=f"Free space no volume may use: {UNITS_HELP}. Empty or 0: none.")

    class Meta:
        model = StoragePool
        fields = ["max_overcommit"]
        labels = {"max_overcommit": "Max overcommit"}
        help_texts = {"max_overcommit": "Largest sum of volumes' virtual sizes over pool capacity, e.g. 1.5. "
                                        "Empty: no limit."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reserve"].initial = exact_size_text(self.instance.reserve_bytes)

    def clean_max_overcommit(self) -> Decimal | None:
        value = self.cleaned_data["max_overcommit"]
        if value is not None and value < Decimal("0.1"):
            raise ValidationError("A limit below 0.1× would refuse every volume; leave it empty for no limit.")
        return value

    def clean_reserve(self) -> int:
        text = self.cleaned_data["reserve"].strip()
        if not text:
            return 0
        try:
            size = parse_size(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if self.instance.capacity and size > self.instance.capacity:
            raise ValidationError(f"The reserve ({text}) is larger than the whole pool.")
        return size

    def save(self, commit: bool = True) -> StoragePool:
        """Write only the policy: a sync may be updating the pool's numbers at the same time."""
        self.instance.reserve_bytes = self.cleaned_data["reserve"]
        if commit:
            StoragePool.objects.filter(pk=self.instance.pk).update(
                max_overcommit=self.instance.max_overcommit, reserve_bytes=self.instance.reserve_bytes)
        return self.instance
