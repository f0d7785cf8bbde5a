"""The request form (new and edit) and the review form. A request is checked like a new volume
(volumes.forms.VolumeCreateForm: name, size, format, provisioning, backing, the pool's policy) and then for
what only a request has: its team, a name free among the pool's open requests, the pool's policy with the
approved requests not in the inventory yet, and the team's quota; each refusal says why, with the numbers."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pools.models import StoragePool
from pools.policy import PolicyViolation
from virtstorage.virt.units import binary_size
from volumes.forms import VolumeCreateForm

from . import quota, rules
from .models import ProvisioningRequest


class RequestForm(VolumeCreateForm):
    team = forms.ModelChoiceField(
        queryset=None, empty_label=None, label=gettext_lazy("Team"),
        help_text=gettext_lazy("The team whose quota in this pool the volume counts against."))
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, label=gettext_lazy("Purpose"),
                              help_text=gettext_lazy("What the volume is for: the approver reads this."))

    field_order = ["team", "name", "capacity", "format", "provisioning", "backing", "purpose"]

    def __init__(self, *args, pool: StoragePool, user, instance: ProvisioningRequest | None = None, **kwargs) -> None:
        if instance is not None:
            kwargs.setdefault("initial", initial_of(instance))
        super().__init__(*args, pool=pool, user=user, **kwargs)
        self.instance = instance
        teams = rules.requesting_teams(user, pool)
        self.fields["team"].queryset = teams
        if instance is None and len(teams[:2]) == 1:
            self.fields["team"].initial = teams[0].pk

    def add_team_field(self, user, pool: StoragePool | None = None) -> None:
        """The request's own team field (above) stands."""
        self.user = user

    def charge_to(self, pool: StoragePool, **sizes: int) -> None:
        """Nothing is charged at once: an approved request reserves its size (the quota is checked in clean() as
        a request's, and again at the approval), and its job records the volume as the team's."""

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        clash = quota.name_clash(self.pool, name, exclude=self.instance)
        if clash:
            raise forms.ValidationError(clash)
        return name

    def _check_policy(self, pool: StoragePool, **sizes: int) -> None:
        try:
            self.warnings = quota.check_policy(pool, self._ledger(), **sizes)
        except PolicyViolation as exc:
            raise forms.ValidationError(str(exc)) from exc

    def _ledger(self, team=None) -> quota.Ledger:
        """The pool's reservations (and the team's usage, given a team), the request being edited left out."""
        exclude = [self.instance.pk] if self.instance is not None and self.instance.pk else []
        return quota.Ledger.read({(team.pk if team is not None else 0, self.pool.pk)}, exclude=exclude)

    def clean(self) -> dict:
        data = super().clean()
        team, capacity = data.get("team"), data.get("capacity")
        if team is not None and capacity is not None and not self.errors:
            try:
                quota.check_quota(team, self.pool, capacity, self._ledger(team))
            except quota.QuotaExceeded as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def changes(self) -> dict:
        """What an edit changes, in words: {field: {"from": old, "to": new}}."""
        req, data = self.instance, self.cleaned_data
        before = {"team": req.team, "name": req.name, "capacity": req.capacity, "format": req.format,
                  "provisioning": req.preallocation, "backing": req.backing, "purpose": req.purpose}
        return {name: {"from": _text(name, old), "to": _text(name, data.get(name))}
                for name, old in before.items() if old != data.get(name)}


def typed_size(size: int) -> str:
    """A size as one would type it, exactly: 10G, 512M, or bytes."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def initial_of(req: ProvisioningRequest) -> dict:
    return {"team": req.team_id, "name": req.name, "capacity": typed_size(req.capacity), "format": req.format,
            "provisioning": req.preallocation, "backing": req.backing_id, "purpose": req.purpose}


def _text(name: str, value) -> str:
    if value is None or value == "":
        return "—"
    return binary_size(value) if name == "capacity" else str(value)


class RequestsField(forms.ModelMultipleChoiceField):
    """Request ids; one no row could have (not a 64-bit number) is an invalid choice, not a database error
    (Django guards exact lookups against out-of-range numbers, not the `in` lookup this field makes)."""

    def _check_values(self, value):
        for pk in value or ():
            try:
                if not -(2**63) <= int(str(pk)) < 2**63:
                    raise ValueError
            except ValueError:
                raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                            params={"value": pk}) from None
        return super()._check_values(value)


class ReviewForm(forms.Form):
    """Approve or reject the ticked requests (one or many), with one comment."""

    requests = RequestsField(queryset=ProvisioningRequest.objects.none(), label=gettext_lazy("Requests"),
                             error_messages={"required": gettext_lazy("Tick at least one request.")})
    decision = forms.ChoiceField(choices=[("approve", gettext_lazy("Approve")), ("reject", gettext_lazy("Reject"))],
                                 label=gettext_lazy("Decision"))
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                              label=gettext_lazy("Comment"))

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Any state: one decided meanwhile is told so by services.review, not refused as an unknown choice.
        self.fields["requests"].queryset = rules.approvable(user).order_by("created_at", "pk")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("decision") == "reject" and not data.get("comment", "").strip():
            self.add_error("comment", _("Say why you reject: the requester reads it."))
        return data
