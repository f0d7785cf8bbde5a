"""The audit log: one row per change, written once and never changed or deleted.

``AuditRecord.objects`` refuses ``update()`` and ``delete()``; a record's ``save()`` refuses an existing
row and its ``delete()`` refuses always. Only the database's own SET NULL (a user deleted: ``username``
keeps the name) goes through Django's base manager, which the deletion collector uses.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class AppendOnly(Exception):
    """Raised on any attempt to change or delete an audit record."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit records are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnly("Audit records are append-only: they cannot be deleted.")

    delete.queryset_only = True  # as Django's own: no AuditRecord.objects.delete()


class AuditRecord(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", _("OK")
        STARTED = "started", pgettext_lazy("outcome", "Started")
        REFUSED = "refused", pgettext_lazy("outcome", "Refused")
        FAILED = "failed", pgettext_lazy("outcome", "Failed")
        CANCELLED = "cancelled", pgettext_lazy("outcome", "Cancelled")

    at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    # The name as it was: kept when the user is deleted; for a failed login, the name that was typed.
    username = models.CharField(max_length=150, blank=True)
    team = models.CharField(max_length=255, blank=True, help_text=_("The names of the teams involved."))
    action = models.CharField(max_length=64, help_text=_("host.create, pool.start, volume.delete, login…"))
    target_type = models.CharField(max_length=32, blank=True, help_text=_("host, pool, volume, upload, user…"))
    target_id = models.CharField(max_length=255, blank=True)
    target = models.CharField(max_length=500, blank=True, help_text=_("What it was done to, in words."))
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        # Each filter's index ends with the time, so "newest first" walks it without sorting.
        indexes = [
            models.Index(fields=["username", "at"], name="audit_user_at"),
            models.Index(fields=["action", "at"], name="audit_action_at"),
            models.Index(fields=["target_type", "target_id", "at"], name="audit_target_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target} ({self.outcome})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnly("Audit records are append-only: a saved record cannot be changed.")
        kwargs["force_insert"] = True
        kwargs.pop("force_update", None)
        kwargs.pop("update_fields", None)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit records are append-only: they cannot be deleted.")

    @property
    def detail_text(self) -> str:
        return json.dumps(self.detail, sort_keys=True, cls=DjangoJSONEncoder) if self.detail else ""
