"""Teams: who may use which storage. Users belong to teams with a role; admins grant teams pools
(pools.PoolGrant, with the team's quota there). The site-wide admin role stays a group (roles.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    all_pools = models.BooleanField(
        default=False, help_text="The team may use every pool, present and future, without grants (the team "
                                 "today's accounts landed in when teams came; admins may turn it off).")
    auto_approve_max_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Requests up to this virtual size that fit the quota are approved by "
                                         "the system. Empty: every request waits for an approver.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member: view, request volumes, upload, download, clone"
        OPERATOR = "operator", "Operator: also create, resize, wipe and delete, and approve the team's requests"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"
