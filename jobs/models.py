from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.access import OwnedQuerySet

# Each job kind in words (the key is the kind, as stored). A kind not here shows as its key made readable.
KIND_LABELS = {
    "upload": pgettext_lazy("job kind", "Upload"),
    "download": pgettext_lazy("job kind", "Download"),
    "sync": pgettext_lazy("job kind", "Sync"),
    "info": pgettext_lazy("job kind", "Info"),
    "check": pgettext_lazy("job kind", "Check"),
    "convert": pgettext_lazy("job kind", "Convert"),
    "import": pgettext_lazy("job kind", "Import"),
    "create": pgettext_lazy("job kind", "Create"),
    "clone": pgettext_lazy("job kind", "Clone"),
    "resize": pgettext_lazy("job kind", "Resize"),
    "delete": pgettext_lazy("job kind", "Delete"),
    "wipe": pgettext_lazy("job kind", "Wipe"),
    "vm-attach": pgettext_lazy("job kind", "VM disk attach"),
    "vm-detach": pgettext_lazy("job kind", "VM disk detach"),
    "vm-adopt": pgettext_lazy("job kind", "VM disk adopt"),
    "vm-switch": pgettext_lazy("job kind", "VM disk switch"),
    "pool-define": pgettext_lazy("job kind", "Pool define"),
    "pool-build": pgettext_lazy("job kind", "Pool build"),
    "pool-start": pgettext_lazy("job kind", "Pool start"),
    "pool-stop": pgettext_lazy("job kind", "Pool stop"),
    "pool-refresh": pgettext_lazy("job kind", "Pool refresh"),
    "pool-autostart": pgettext_lazy("job kind", "Pool autostart"),
    "pool-delete": pgettext_lazy("job kind", "Pool delete"),
    "pool-undefine": pgettext_lazy("job kind", "Pool undefine"),
}


class JobQuerySet(OwnedQuerySet):
    def active(self) -> JobQuerySet:
        return self.filter(state__in=Job.ACTIVE_STATES)


class Job(models.Model):
    """One long libvirt operation, run by a Celery worker and watched by a person."""

    class State(models.TextChoices):
        QUEUED = "queued", pgettext_lazy("job state", "Queued")
        RUNNING = "running", pgettext_lazy("job state", "Running")
        SUCCEEDED = "succeeded", pgettext_lazy("job state", "Succeeded")
        FAILED = "failed", pgettext_lazy("job state", "Failed")
        CANCELLED = "cancelled", pgettext_lazy("job state", "Cancelled")

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    kind = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    pool = models.ForeignKey("pools.StoragePool", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="jobs")
    # Names are kept as text: the job outlives a deleted volume or pool row.
    pool_name = models.CharField(max_length=255, blank=True)
    volume_name = models.CharField(max_length=255, blank=True, db_index=True)
    # A second place the job writes (a clone's new volume): conflicts are checked there too.
    target_pool = models.ForeignKey("pools.StoragePool", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    target_volume_name = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.BigIntegerField(null=True, blank=True)
    progress_total = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True, help_text=_("What the job is doing now."))
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    result = models.CharField(max_length=500, blank=True)
    cancellable = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=255, blank=True)
    # The language of the page that started the job: its steps and messages are written in it.
    language = models.CharField(max_length=16, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["pool", "state"])]

    def __str__(self) -> str:
        target = "/".join(n for n in (self.pool_name, self.volume_name) if n)
        return f"{self.get_kind_display()} {target}".strip()

    def get_absolute_url(self) -> str:
        return reverse("jobs:detail", args=[self.pk])

    def get_kind_display(self) -> str:
        label = KIND_LABELS.get(self.kind)
        return str(label) if label is not None else self.kind.replace("_", " ").replace("-", " ").capitalize()

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def percent(self) -> float | None:
        if self.progress_total and self.progress_done is not None:
            return max(0.0, min(100.0, 100.0 * self.progress_done / self.progress_total))
        return None

    @property
    def elapsed(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def rate(self) -> float | None:
        """Bytes per second since the start, when the job reports bytes."""
        elapsed = self.elapsed
        if self.progress_done is None or not elapsed or elapsed.total_seconds() < 0.5:
            return None
        return self.progress_done / elapsed.total_seconds()

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if not rate or not self.progress_total or self.state != self.State.RUNNING:
            return None
        return max(0.0, (self.progress_total - (self.progress_done or 0)) / rate)
