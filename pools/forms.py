"""Forms of a defined pool's lifecycle and policy: build, delete, capacity policy (define: define_forms.py)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

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
            ngettext("Also delete its %(count)s volume and all their data",
                     "Also delete its %(count)s volumes and all their data", count) % {"count": count} if count
            else _("Also delete any volumes it holds (it had none at the last sync)"))

    def clean(self) -> dict:
        data = super().clean()
        self.require_name()
        if self.pool.volume_count and not data.get("delete_volumes"):
            count = self.pool.volume_count
            self.add_error("delete_volumes", ngettext(
                "Pool %(pool)s holds %(count)s volume: tick this to delete it too, or delete it first.",
                "Pool %(pool)s holds %(count)s volumes: tick this to delete them too, or delete them first.",
                count) % {"pool": self.pool.name, "count": count})
        return data


class BuildPoolForm(PoolConfirmForm):
    overwrite = forms.BooleanField(
        required=False, label=gettext_lazy("Overwrite: format the device even if it already holds data"),
        help_text=gettext_lazy("Without this, libvirt refuses to build over an existing file system, label or "
                               "volume group."))

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
    # help_text is set in __init__: it is a sentence around UNITS_HELP, translated per request.
    reserve = forms.CharField(label=gettext_lazy("Reserve"), max_length=40, required=False)

    class Meta:
        model = StoragePool
        fields = ["max_overcommit"]
        labels = {"max_overcommit": gettext_lazy("Max overcommit")}
        help_texts = {"max_overcommit": gettext_lazy("Largest sum of volumes' virtual sizes over pool capacity, "
                                                     "e.g. 1.5. Empty: no limit.")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reserve"].initial = exact_size_text(self.instance.reserve_bytes)
        self.fields["reserve"].help_text = _("Free space no volume may use: %(units)s. Empty or 0: none.") % {
            "units": UNITS_HELP}

    def clean_max_overcommit(self) -> Decimal | None:
        value = self.cleaned_data["max_overcommit"]
        if value is not None and value < Decimal("0.1"):
            raise ValidationError(_("A limit below 0.1× would refuse every volume; leave it empty for no limit."))
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
            raise ValidationError(_("The reserve (%(size)s) is larger than the whole pool.") % {"size": text})
        return size

    def save(self, commit: bool = True) -> StoragePool:
        """Write only the policy: a sync may be updating the pool's numbers at the same time."""
        self.instance.reserve_bytes = self.cleaned_data["reserve"]
        if commit:
            StoragePool.objects.filter(pk=self.instance.pk).update(
                max_overcommit=self.instance.max_overcommit, reserve_bytes=self.instance.reserve_bytes)
        return self.instance
