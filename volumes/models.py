from __future__ import annotations

from django.db import models
from django.urls import reverse


class Volume(models.Model):
    """A storage volume as last seen by a sync."""

    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=255)
    key = models.CharField(max_length=4096, blank=True)
    path = models.CharField(max_length=4096, blank=True, db_index=True)
    type = models.CharField(max_length=32, blank=True)
    format = models.CharField(max_length=32, blank=True)
    capacity = models.BigIntegerField("virtual size", default=0)
    allocation = models.BigIntegerField("disk size", default=0)
    physical = models.BigIntegerField("physical size", default=0)
    backing_path = models.CharField(max_length=4096, blank=True)
    backing_format = models.CharField(max_length=32, blank=True)
    xml = models.TextField(blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="unique_volume_name_per_pool")]
        indexes = [
            models.Index(fields=["pool", "capacity"]),
            models.Index(fields=["pool", "allocation"]),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("volumes:detail", args=[self.pk])

    @property
    def is_preallocated(self) -> bool:
        """As `qemu-img info` tells: disk size equal to virtual size means preallocated."""
        return self.capacity > 0 and self.allocation >= self.capacity

    @property
    def provisioning(self) -> str:
        return "preallocated" if self.is_preallocated else "thin"

    @property
    def thin_savings(self) -> int:
        """Bytes the guest may still use that the host has not handed out yet."""
        return max(0, self.capacity - self.allocation)
