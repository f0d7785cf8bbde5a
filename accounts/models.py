"""Teams: who may use which storage. Users belong to teams with a role; admins grant teams pools
(pools.PoolGrant, with the team's quota there). The site-wide admin role stays a group (roles.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    all_pools = models.BooleanField(
        default=False, help_text=_("The team may use every pool, present and future, without grants (the team "
                                   "today's accounts landed in when teams came; admins may turn it off)."))
    auto_approve_max_bytes = models.BigIntegerField(
        null=True, blank=True, help_text=_("Requests up to this virtual size that fit the quota are approved by "
                                           "the system. Empty: every request waits for an approver."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# A role's short name as pages show it ({% translate membership.role %}): marked here for the catalog.
ROLE_NAMES = (gettext_noop("member"), gettext_noop("operator"), gettext_noop("admin"))


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", _("Member: view, request volumes, upload, download, clone")
        OPERATOR = "operator", _("Operator: also create, resize, wipe and delete, and approve the team's requests")

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class ApiToken(models.Model):
    """A personal API token: ``vst_<prefix>_<secret>``, shown once when made. Only its public prefix (for the
    lookup) and the SHA-256 of the whole token are kept, never the token itself (accounts/tokens.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text=_("What the token is for, e.g. “CI pipeline”."))
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text=_("Empty: it never expires."))
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"token {self.name} ({self.prefix}) of {self.user}"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Preferences(models.Model):
    """What a person chose for themselves. The language follows them from device to device; empty: the
    browser's Accept-Language decides."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    language = models.CharField(max_length=16, blank=True, choices=settings.LANGUAGES)

    def __str__(self) -> str:
        return f"{self.user}: {self.language or 'browser language'}"
