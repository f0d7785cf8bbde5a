"""Forms of teams and memberships: the admin pages (pools/team_views.py) and the management commands use them."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from virtstorage.virt.units import UNITS_HELP, exact_size_text, parse_size

from .models import Membership, Team
from .teams import DEFAULT_TEAM


def optional_size(text: str | None) -> int | None:
    """Bytes of a size typed into an optional field; None when it is empty; ValidationError when it is wrong."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None


def form_errors(form: forms.Form) -> str:
    """A form's errors on one line, for a management command's CommandError."""
    return "; ".join(f"{'' if field == '__all__' else field + ': '}{' '.join(errors)}"
                     for field, errors in form.errors.items())


def size_text(value: int | None) -> str:
    return "" if value is None else exact_size_text(value)


_AUTO_APPROVE_HELP = lazy(lambda: gettext(
    "Requests up to this virtual size that fit the quota are approved by the system: %(units)s. "
    "Empty: every request waits for an approver.") % {"units": UNITS_HELP}, str)()


class TeamForm(forms.ModelForm):
    auto_approve_max = forms.CharField(label=_("Auto-approve up to"), max_length=40, required=False,
                                       help_text=_AUTO_APPROVE_HELP)

    class Meta:
        model = Team
        fields = ["name", "description", "all_pools"]
        labels = {"name": _("Name"), "description": _("Description"), "all_pools": _("May use every pool")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["auto_approve_max"].initial = size_text(self.instance.auto_approve_max_bytes)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Team.objects.exclude(pk=self.instance.pk)
        if others.filter(name__iexact=name).exists():
            raise forms.ValidationError(_("There is already a team named %(name)s (names ignore case).")
                                        % {"name": name})
        if self.instance.pk and self.instance.name == DEFAULT_TEAM and name != DEFAULT_TEAM:
            raise forms.ValidationError(_("The %(team)s team keeps its name: new members join it by that name.")
                                        % {"team": DEFAULT_TEAM})
        return name

    def clean_auto_approve_max(self) -> int | None:
        return optional_size(self.cleaned_data["auto_approve_max"])

    def save(self, commit: bool = True) -> Team:
        self.instance.auto_approve_max_bytes = self.cleaned_data["auto_approve_max"]
        return super().save(commit)


class MemberForm(forms.Form):
    """Add an account to a team by its username, or change the role it has there."""

    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def clean_username(self) -> str:
        name = self.cleaned_data["username"]
        self.user = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: name}).first()
        if self.user is None:
            raise forms.ValidationError(_("There is no account named %(name)s: create it on the Accounts page.")
                                        % {"name": name})
        return name
