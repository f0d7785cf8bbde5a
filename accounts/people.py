"""Accounts, as an admin makes and keeps them on the Accounts page (accounts/people_views.py) and as
`manage.py createmember` does: one place sets an account up (password, site-wide role, team)."""

from __future__ import annotations

import secrets

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import Membership, Team
from .roles import ADMIN, MEMBER, grant
from .teams import join


def set_up(user: AbstractBaseUser, *, password: str, site_role: str, team: Team | None = None,
           team_role: str = Membership.Role.MEMBER) -> None:
    """Give the account its password and its site-wide role (member or admin) and put a member in the team."""
    user.set_password(password)
    user.is_staff = site_role == ADMIN
    user.save()
    grant(user, ADMIN if site_role == ADMIN else MEMBER)
    if site_role != ADMIN and team is not None:
        join(user, team, team_role)


def generated_password() -> str:
    """A password to hand over once; its owner changes it at /accounts/password/."""
    return secrets.token_urlsafe(12)


class AccountForm(forms.Form):
    username = forms.CharField(label=gettext_lazy("Username"), max_length=150,
                               validators=[get_user_model().username_validator])
    site_role = forms.ChoiceField(label=gettext_lazy("Role"), initial=MEMBER, choices=[
        (MEMBER, gettext_lazy("Member: uses the pools of their teams")),
        (ADMIN, gettext_lazy("Admin: manages hosts, pools, teams and accounts"))])
    team = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), required=False,
                                  label=gettext_lazy("Team"), empty_label=gettext_lazy("none yet"),
                                  help_text=gettext_lazy("A member sees only the pools of their teams."))
    team_role = forms.ChoiceField(label=gettext_lazy("Role in the team"), choices=Membership.Role.choices,
                                  initial=Membership.Role.MEMBER)

    def clean_username(self) -> str:
        name = self.cleaned_data["username"]
        if get_user_model()._default_manager.filter(username__iexact=name).exists():
            raise forms.ValidationError(_("There is already an account named %(name)s.") % {"name": name})
        return name
