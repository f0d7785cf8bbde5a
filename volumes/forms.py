"""Forms of volume operations: everything is checked here, before libvirt sees it."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.urls import reverse
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from hosts.forms import ConfirmNameForm
from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.units import UNITS_HELP, binary_size, parse_size, volume_size
from virtstorage.virt.volumes import WipeChoice

from .models import Volume, in_use_refusal
from .names import validate_volume_name
from .quota import Charge, ChargedForm, charge_form
from .safety import refuse_unsafe

FORMAT_CHOICES = [("raw", "raw"), ("qcow2", "qcow2")]
PROVISIONING_CHOICES = [
    ("off", _("Thin: allocate as the guest writes")),
    ("metadata", _("qcow2 metadata only: thin, but faster first writes")),
    ("full", _("Preallocated: reserve all space now")),
]
# Fields are built at import time, the language is known only when a page is rendered.
_UNITS_HELP = lazy(lambda: gettext("Binary units: %(units)s.") % {"units": UNITS_HELP}, str)()


class VolumeNameField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 1000)  # the validator gives the real limit with a clearer message
        kwargs.setdefault("strip", False)  # " disk" is not "disk": refuse it rather than guess
        kwargs.setdefault("help_text", _("Letters, digits and . _ + -, starting with a letter or digit."))
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        if "\x00" in value:
            raise forms.ValidationError(gettext("A volume name cannot contain a NUL character."))
        return value

    def validate(self, value) -> None:
        super().validate(value)
        try:
            validate_volume_name(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class SizeField(forms.CharField):
    """A volume's virtual size typed as "10G", "512 MiB" or bytes; cleans to bytes, rounded up to a whole KiB as
    libvirt makes it (units.volume_size), at least 1 MiB."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("help_text", _UNITS_HELP)
        super().__init__(**kwargs)

    def clean(self, value):
        text = super().clean(value)
        if text in self.empty_values:
            return None
        try:
            size = parse_size(text)
            if size <= 0:
                raise ValueError(gettext("A size must be larger than zero."))
            return volume_size(size)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


def _name_taken(pool: StoragePool, name: str) -> bool:
    return Volume.objects.filter(pool=pool, name=name).exists()


class _PolicyMixin:
    """Turns pools.policy into form errors and keeps its warnings for the view."""

    warnings: list[str]

    def _check_policy(self, pool: StoragePool, **sizes: int) -> None:
        try:
            self.warnings = check_volume_fits(pool, **sizes).warnings
        except PolicyViolation as exc:
            raise forms.ValidationError(str(exc)) from exc


BACKING_OPTIONS = 50  # volumes listed at once in the backing volume picker


# What a qcow2 overlay may be based on, of the volumes the user may see on the pool's host: safe raw and qcow2.
BACKING_SAFE = Q(format__in=["raw", "qcow2"], unsafe_reason="")


def backing_candidates(pool: StoragePool, user):
    """Volumes of the pool's host that a qcow2 overlay may be based on: safe ones the user may see."""
    return (Volume.objects.visible_to(user).filter(BACKING_SAFE, pool__host_id=pool.host_id)
            .select_related("pool").order_by("pool__name", "name"))


def backing_label(volume: Volume) -> str:
    return f"{volume.pool.name} / {volume.name} ({volume.format}, {binary_size(volume.capacity)})"


def backing_choices(pool: StoragePool, user, *, search: str = "",
                    count: int = BACKING_OPTIONS) -> list[tuple[int, str]]:
    """The first count backing candidates (as backing_candidates, names containing search), sorted by pool and then
    by name, as (pk, label). Read pool by pool, each in its (pool, name) index order, until count are found: one
    sort of every volume of the host took 25 ms per form on PostgreSQL at 10,000 volumes, most of the load
    test's database time. Only what a label shows is read (with each row's XML it took twice as long)."""
    candidates = Volume.objects.filter(BACKING_SAFE).select_related("pool").order_by("name")
    if search:
        candidates = candidates.filter(name__icontains=search)
    chosen: list[tuple[int, str]] = []
    # The user's pools of the host, once: each pool's query is then the pool's rows alone.
    pools = StoragePool.objects.visible_to(user).filter(host_id=pool.host_id).order_by("name")
    for pool_id in pools.values_list("pk", flat=True):
        chosen += labelled(candidates.filter(pool_id=pool_id)[:count - len(chosen)])
        if len(chosen) >= count:
            break
    return chosen


def labelled(volumes) -> list[tuple[int, str]]:
    """These backing candidates as (pk, label), reading only what a label shows."""
    return [(v.pk, backing_label(v)) for v in volumes.only("id", "name", "format", "capacity", "pool_id",
                                                              "pool__name")]


class BackingVolumeSelect(forms.Select):
    """A select with a search box above it: the box asks the server for matching volumes (htmx)."""

    def __init__(self, *, search_url: str) -> None:
        super().__init__()
        self.search_url = search_url

    def render(self, name, value, attrs=None, renderer=None) -> str:
        select_id = (attrs or {}).get("id") or f"id_{name}"
        search = format_html(
            '<input type="search" name="{}_search" placeholder="{}" aria-label="{}" autocomplete="off" hx-get="{}" '
            'hx-trigger="input changed delay:250ms, search" hx-target="#{}" hx-swap="innerHTML" hx-include="this">',
            name, gettext("Search volumes by name…"), gettext("Search backing volumes"), self.search_url, select_id)
        return format_html("{}{}", search, super().render(name, value, attrs, renderer))


class FormatBoundRadios(forms.RadioSelect):
    """Radio buttons of which some exist for some formats only (qcow2's metadata preallocation): each such button
    says which (data-formats), and static/js/app.js turns it off while the form's format is another. The form's
    clean() still refuses the pair, for the API and a browser without scripts."""

    def __init__(self, formats_of: dict[str, str]) -> None:
        super().__init__()
        self.formats_of = formats_of

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None) -> dict:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value in self.formats_of:
            option["attrs"]["data-formats"] = self.formats_of[value]
        return option


class VolumeCreateForm(_PolicyMixin, ChargedForm):
    name = VolumeNameField(label=_("Name"))
    capacity = SizeField(label=_("Virtual size"))
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="qcow2", label=_("Format"))
    provisioning = forms.ChoiceField(choices=PROVISIONING_CHOICES, initial="off",
                                     widget=FormatBoundRadios({"metadata": "qcow2"}), label=_("Provisioning"))
    backing = forms.ModelChoiceField(
        queryset=Volume.objects.none(), required=False, label=_("Backing volume (qcow2 overlay)"),
        help_text=_("The new volume starts as a copy-on-write overlay of this one; it stays thin."),
    )

    def __init__(self, *args, pool: StoragePool, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.warnings = []
        self.add_team_field(user, pool)
        field = self.fields["backing"]
        field.queryset = backing_candidates(pool, user)  # what validation accepts: any the user may see
        # What the page lists: a host may hold 10,000 volumes, so the first few and the one chosen;
        # typing in the search box above the list asks for matching ones (volumes:backing_options).
        chosen = self.data.get("backing") if self.is_bound else None
        shown = backing_choices(pool, user)
        if chosen and str(chosen).isdigit() and all(str(pk) != str(chosen) for pk, _label in shown):
            shown += labelled(field.queryset.filter(pk=int(chosen)))
        field.widget = BackingVolumeSelect(search_url=reverse("volumes:backing_options", args=[pool.pk]))
        field.widget.choices = [("", gettext("— none: a volume of its own —")), *shown]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if _name_taken(self.pool, name):
            raise forms.ValidationError(gettext("Pool %(pool)s already has a volume named %(name)s.")
                                        % {"pool": self.pool.name, "name": name})
        return name

    def clean(self) -> dict:
        data = super().clean()
        fmt, provisioning, backing = data.get("format"), data.get("provisioning"), data.get("backing")
        capacity = data.get("capacity")
        if not self.pool.is_active:
            raise forms.ValidationError(gettext("Pool %(pool)s is stopped; start it first.") % {"pool": self.pool.name})
        if provisioning == "metadata" and fmt != "qcow2":
            self.add_error("provisioning",
                           gettext("Metadata preallocation exists only for qcow2; choose thin or full."))
        if backing is not None:
            if fmt != "qcow2":
                self.add_error("backing", gettext("Only a qcow2 volume can have a backing volume."))
            if provisioning != "off":
                self.add_error("provisioning", gettext("An overlay is always thin: choose thin provisioning."))
            if capacity is not None and capacity < backing.capacity:
                self.add_error("capacity", gettext("An overlay cannot be smaller than its backing volume (%(size)s).")
                               % {"size": binary_size(backing.capacity)})
        if capacity is not None and not self.errors:
            allocation = capacity if provisioning == "full" else 0
            self._check_policy(self.pool, capacity=capacity, allocation=allocation)
            self.charge_to(self.pool, count=1, capacity=capacity, allocation=allocation)
        return data


def offer_copy_pools(field: forms.ModelChoiceField, volume: Volume, user) -> None:
    """A copy of the volume (clone, convert) goes only into the user's teams' started pools on its host;
    its own pool first."""
    field.queryset = StoragePool.objects.visible_to(user).filter(host_id=volume.pool.host_id,
                                                                 state=StoragePool.State.ACTIVE)
    field.initial = volume.pool.pk


class VolumeCloneForm(_PolicyMixin, ChargedForm):
    name = VolumeNameField(label=_("New name"))
    target_pool = forms.ModelChoiceField(queryset=StoragePool.objects.none(), label=_("Into pool"))
    format = forms.ChoiceField(choices=[("", _("Keep the format")), *FORMAT_CHOICES], required=False,
                               label=_("Format of the copy"))

    def __init__(self, *args, volume: Volume, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.warnings = []
        offer_copy_pools(self.fields["target_pool"], volume, user)
        self.add_team_field(user)

    def clean(self) -> dict:
        data = super().clean()
        refuse_unsafe(self.volume)
        name, pool = data.get("name"), data.get("target_pool")
        if name and pool is not None:
            if _name_taken(pool, name):
                self.add_error("name", gettext("Pool %(pool)s already has a volume named %(name)s.")
                               % {"pool": pool.name, "name": name})
            else:
                # a copy is sparse at most as large as the source's disk size
                self._check_policy(pool, capacity=self.volume.capacity, allocation=self.volume.allocation)
                self.charge_to(pool, count=1, capacity=self.volume.capacity, allocation=self.volume.allocation)
        return data


class VolumeResizeForm(_PolicyMixin, forms.Form):
    capacity = SizeField(label=_("New virtual size"))
    allocate = forms.BooleanField(required=False, label=_("Allocate the new space now (raw volumes only)"))
    confirm_shrink = forms.CharField(
        required=False, label=_("To shrink, type the volume's name"),
        help_text=_("Shrinking drops every byte past the new end; the guest's file system must already fit."),
    )

    def __init__(self, *args, volume: Volume, can_force: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.warnings = []
        self.shrinking = False
        if volume.format != "raw":  # offered off, and why; a request that asks anyway is refused in clean()
            self.fields["allocate"].widget.attrs["disabled"] = True
            self.fields["allocate"].help_text = _("This volume is %(format)s: its new space is allocated as the "
                                                  "guest writes.") % {"format": volume.format or _("not raw")}
        if volume.allocation >= volume.capacity:  # libvirt never shrinks below the disk size: it can only grow
            del self.fields["confirm_shrink"]
            self.fields["capacity"].help_text = _("%(units)s This volume is preallocated (its disk size is its "
                                                  "virtual size): it can only grow.") % {"units": _UNITS_HELP}
        elif can_force:
            self.fields["force"] = forms.BooleanField(
                required=False, label=_("Shrink even if a virtual machine uses it (admins only)"))

    def clean(self) -> dict:
        data = super().clean()
        refuse_unsafe(self.volume)
        capacity = data.get("capacity")
        if capacity is None:
            return data
        volume = self.volume
        if capacity == volume.capacity:
            self.add_error("capacity", gettext("The volume is already %(size)s.") % {"size": binary_size(capacity)})
            return data
        if data.get("allocate") and volume.format != "raw":
            self.add_error("allocate", gettext("libvirt can allocate new space only for raw volumes."))
        self.shrinking = capacity < volume.capacity
        if self.shrinking and capacity < volume.allocation:
            # libvirt refuses this ("can't shrink capacity below existing allocation")
            self.add_error("capacity", gettext("A volume cannot shrink below its disk size (%(size)s allocated); "
                                               "preallocated volumes cannot shrink.")
                           % {"size": binary_size(volume.allocation)})
        elif self.shrinking and data.get("confirm_shrink") != volume.name:
            self.add_error("confirm_shrink", gettext("The new size is smaller: everything past %(size)s is lost. "
                                                     "Type “%(name)s” to confirm.")
                           % {"size": binary_size(capacity), "name": volume.name})
        if self.shrinking:
            refuse_in_use(self, "shrink", volume)
        if self.errors:
            return data
        allocation = max(capacity, volume.allocation) if data.get("allocate") else min(volume.allocation, capacity)
        self._check_policy(volume.pool, capacity=capacity, allocation=allocation,
                           replacing=volume.capacity, replacing_allocation=volume.allocation)
        if not self.shrinking:  # the growth counts against the quota of the team the volume belongs to
            charge_form(self, Charge(volume.team, volume.pool, 0, capacity - volume.capacity,
                                     max(0, allocation - volume.allocation)))
        return data


class _VolumeConfirmForm(ConfirmNameForm):
    """Type the volume's name (and, for admins, force past a VM that uses it)."""

    def __init__(self, *args, volume: Volume, can_force: bool, **kwargs) -> None:
        super().__init__(*args, name=volume.name, what="volume", **kwargs)
        self.volume = volume
        self.can_force = can_force
        if can_force:
            self.fields["force"] = forms.BooleanField(
                required=False, label=_("Force, even if a virtual machine uses it (admins only)"))

    def clean(self) -> dict:
        data = super().clean()
        self.require_name()
        refuse_in_use(self, self.action, self.volume)
        return data


def refuse_in_use(form: forms.Form, action: str, volume: Volume) -> None:
    """The form's error when a VM uses the volume (as of the last sync) and no admin forces it; the job
    checks libvirt again."""
    if not form.cleaned_data.get("force") and (refusal := in_use_refusal(action, volume.name, volume.vm_names())):
        form.add_error(None, refusal)


class VolumeDeleteForm(_VolumeConfirmForm):
    action = "delete"

    def clean(self) -> dict:
        data = super().clean()
        if not self.can_force:  # an admin removes an unsafe volume; nobody else touches it
            refuse_unsafe(self.volume)
        return data


class VolumeWipeForm(_VolumeConfirmForm):
    action = "wipe"
    algorithm = forms.ChoiceField(label=_("Wipe pattern"))

    def __init__(self, *args, choices: list[WipeChoice], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choices = choices
        self.fields["algorithm"].choices = [
            # only what the host surely can do; "unknown" ones are listed on the page, not offered
            (c.algorithm.name, c.algorithm.label) for c in choices if c.available

        ]
        self.fields["algorithm"].initial = "zero"
        self.order_fields(["algorithm", "confirm", "force"])

    def clean(self) -> dict:
        data = super().clean()
        refuse_unsafe(self.volume)
        return data
