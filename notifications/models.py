"""One row per message to one user: shown under the bell in the page header until read."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class NotificationQuerySet(models.QuerySet):
    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)

    def mark_read(self) -> int:
        return self.unread().update(read_at=timezone.now())


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    text = models.TextField()
    url = models.CharField(max_length=500, blank=True, help_text=_("A path in this site, e.g. /jobs/12/."))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    read_at = models.DateTimeField(null=True, blank=True)
    # What the message asks of its reader, when it asks something that can stop needing them ("request-7-review":
    # an approval that someone else gave): notifications.send.settle marks every unread one of a topic read.
    topic = models.CharField(max_length=100, blank=True, default="")

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_read"),
                   models.Index(fields=["topic"], name="notification_topic", condition=models.Q(read_at__isnull=True))]

    def __str__(self) -> str:
        return f"{self.user} · {self.text[:60]}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def get_open_url(self) -> str:
        return reverse("notifications:open", args=[self.pk])
