from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import models
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import access
from accounts.access import OwnedQuerySet
from hosts.models import DomainDisk, disk_uses_volume
from jobs.rows import hold


class VolumeRemoved(Http404):
    """The volume left the inventory while a request wrote a row that names it: a 404, as if the request had
    come a moment later."""


def in_use_refusal(action: str, volume_name: str, vm_names: list[str]) -> str:
    """Why an action that needs the volume free of VMs (delete, wipe, shrink, replace) is refused: the form
    says it from the inventory, the job again from libvirt. "" when no VM uses it."""
    if not vm_names:
        return ""
    # One whole sentence per action: a translation cannot be assembled from the verb alone.
    refusals = {
        "delete": gettext("Refused to delete “%(volume)s”: it is a disk of the virtual machine(s) %(vms)s. "
                          "Remove the disk from the machine first, or ask an admin to force it."),
        "wipe": gettext("Refused to wipe “%(volume)s”: it is a disk of the virtual machine(s) %(vms)s. "
                        "Remove the disk from the machine first, or ask an admin to force it."),
        "shrink": gettext("Refused to shrink “%(volume)s”: it is a disk of the virtual machine(s) %(vms)s. "
                          "Remove the disk from the machine first, or ask an admin to force it."),
        "replace": gettext("Refused to replace “%(volume)s”: it is a disk of the virtual machine(s) %(vms)s. "
                           "Remove the disk from the machine first, or ask an admin to force it."),
    }
    return refusals[action] % {"volume": volume_name, "vms": ", ".join(vm_names)}


class VolumeQuerySet(models.QuerySet):
    def visible_to(self, user) -> VolumeQuerySet:
        """Volumes of the pools the user may see."""
        return access.visible(self, user, "pool")

    def with_in_use(self) -> VolumeQuerySet:
        """Each volume with ``in_use``: whether a VM defined on its host has it as a disk (one subquery)."""
        disks = DomainDisk.objects.filter(host_id=models.OuterRef("pool__host_id")).filter(
            disk_uses_volume(models.OuterRef("pool__name"), models.OuterRef("path"), models.OuterRef("name")))
        return self.annotate(in_use=models.Exists(disks))

    def table_rows(self) -> VolumeQuerySet:
        """What a volume table shows of each volume. Which VMs use the page's volumes is one query more
        (hosts.models.vm_names_by_volume), not an EXISTS per row here: a sorted page of a large pool had
        SQLite evaluate it for every row of the pool before the sort (30 ms at 10,000 volumes)."""
        return self.only("id", "pool_id", "name", "format", "type", "capacity", "allocation", "path",
                         "unsafe_reason", "team_id")


class Volume(models.Model):
    """A storage volume as last seen by a sync."""

    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=255)
    key = models.CharField(max_length=4096, blank=True)
    path = models.CharField(max_length=4096, blank=True, db_index=True)
    type = models.CharField(max_length=32, blank=True)
    format = models.CharField(max_length=32, blank=True)
    capacity = models.BigIntegerField(_("virtual size"), default=0)
    allocation = models.BigIntegerField(_("disk size"), default=0)
    physical = models.BigIntegerField(_("physical size"), default=0)
    backing_path = models.CharField(max_length=4096, blank=True)
    backing_format = models.CharField(max_length=32, blank=True)
    xml = models.TextField(blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # Image safety (virt/imagecheck.py). The format the app states in every operation: set when the app
    # writes the volume or first sees it, never taken from a later probe of its bytes.
    recorded_format = models.CharField(max_length=32, blank=True)
    unsafe_reason = models.TextField(
        blank=True, help_text=_("Why the image is refused (an external data file, a backing file outside the pools, "
                                "a changed format...); every operation but an admin's delete is refused while set."))
    inspected = models.CharField(
        max_length=100, blank=True, help_text=_("format:ctime:size of the file when its header was last checked."))
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes",
        help_text=_("The team it was made for: it counts against that team's quota in the pool (volumes/quota.py). "
                    "Empty: an admin's, or found by a sync."))

    objects = VolumeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="unique_volume_name_per_pool")]
        # One index per sort of the volume table (pools/views.py VOLUME_SORTS), the tie-break by name included:
        # a page is found in index order, not sorted in a temporary tree of the whole pool. Each holds the row's
        # key too (include: on PostgreSQL; SQLite's indexes always hold it), so the walk to a page deep in the
        # pool reads the index alone and only the page's rows are fetched (pools/views.py _volume_page).
        indexes = [  # the unique constraint's index does not hold the key: PostgreSQL's would sort by format
            models.Index(fields=["pool", "name"], include=["id"], name="volume_sort_name"),
            models.Index(fields=["pool", "capacity", "name"], include=["id"], name="volume_sort_capacity"),
            models.Index(fields=["pool", "allocation", "name"], include=["id"], name="volume_sort_allocation"),
            models.Index(fields=["pool", "format", "name"], include=["id"], name="volume_sort_format"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("volumes:detail", args=[self.pk])

    def hold(self) -> None:
        """Keep this volume in the inventory until the transaction ends (jobs/rows.py), so that a row naming it
        (a request's backing volume) is not orphaned by a sync removing it; VolumeRemoved when it is gone."""
        if not hold(self):
            raise VolumeRemoved(_("Volume %(volume)s was removed from the inventory meanwhile: libvirt no longer "
                                  "has it.") % {"volume": self.name})

    @property
    def listed_at(self) -> datetime | None:
        """When libvirt last listed the volume (its "synced"): its row's last write, or its pool's last full
        listing, whichever is later (a full sync writes only the rows that changed). Load the pool with it."""
        return max((at for at in (self.synced_at, self.pool.volumes_listed_at) if at is not None), default=None)

    @property
    def is_preallocated(self) -> bool:
        """As `qemu-img info` tells: disk size equal to virtual size means preallocated."""
        return self.capacity > 0 and self.allocation >= self.capacity

    @property
    def provisioning(self) -> str:
        return "preallocated" if self.is_preallocated else "thin"

    def users(self):
        """Disks of VMs defined on the host that use this volume, by path or by pool and volume name."""
        return DomainDisk.objects.filter(host_id=self.pool.host_id).filter(
            disk_uses_volume(self.pool.name, models.Value(self.path), models.Value(self.name))
        )

    def vm_names(self) -> list[str]:
        """The VMs that have this volume as a disk, as of the last sync."""
        return sorted(set(self.users().values_list("domain", flat=True)))

    @property
    def thin_savings(self) -> int:
        """Bytes the guest may still use that the host has not handed out yet."""
        return max(0, self.capacity - self.allocation)


# -- Uploads ------------------------------------------------------------------

def merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """[start, end) ranges as sorted, disjoint ones (touching ranges join, empty ones go)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        elif hi > lo:
            merged.append([lo, hi])
    return merged


def merge_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """Sorted, disjoint [start, end) ranges with [start, end) added (touching ranges join)."""
    return merge_ranges([*ranges, [start, end]])


def missing_ranges(ranges: list[list[int]], size: int) -> list[list[int]]:
    """The [start, end) ranges of 0..size that ranges do not cover."""
    missing: list[list[int]] = []
    pos = 0
    for lo, hi in sorted(ranges):
        if lo > pos:
            missing.append([pos, min(lo, size)])
        pos = max(pos, hi)
        if pos >= size:
            break
    if pos < size:
        missing.append([pos, size])
    return [r for r in missing if r[0] < r[1]]


class Upload(models.Model):
    """A file arriving in chunks into a staging file, streamed into a volume by a job.

    The web server never holds a libvirt stream across requests: chunks land in a sparse
    staging file (holes are recorded, not written) and the upload job sends that file.
    Into a new volume the job starts with the upload and follows the chunks as they arrive
    (``streaming``); replacing a volume waits for every byte first, so an abandoned upload
    never costs the old contents.
    """

    class Mode(models.TextChoices):
        NEW = "new", _("New volume")
        EXISTING = "existing", _("Replace an existing volume")

    class State(models.TextChoices):
        RECEIVING = "receiving", _("Receiving")
        SENDING = "sending", _("Sending to the volume")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="uploads")
    volume_name = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.NEW)
    filename = models.CharField(max_length=255, blank=True, help_text=_("The client's file name, for people."))
    size = models.BigIntegerField(help_text=_("Bytes of the file."))
    capacity = models.BigIntegerField(help_text=_("Virtual size of the volume afterwards (raw images)."))
    received = models.JSONField(default=list, blank=True, help_text=_("[start, end) byte ranges accounted for."))
    received_bytes = models.BigIntegerField(default=0)
    hole_bytes = models.BigIntegerField(default=0, help_text=_("Bytes the client declared zeros and did not send."))
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVING)
    completed = models.BooleanField(default=False, help_text=_("The client said every chunk was sent."))
    streaming = models.BooleanField(
        default=False, help_text=_("The job writes the volume while chunks arrive (a new volume, within the "
                                   "uploader's share of the transfer workers); otherwise it starts at complete."))
    stated_format = models.CharField(
        max_length=16, blank=True, help_text=_("The format the client says the file is; blank: read from its header."))
    force = models.BooleanField(default=False, help_text=_("An admin replaces a volume that a VM uses."))
    volume_created = models.BooleanField(
        default=False, help_text=_("A job of this upload created the (new) volume: a later job may replace it."))
    relayed = models.BooleanField(
        default=False, help_text=_("The chunks go to the job's worker through Redis (volumes/relay.py), not into a "
                                   "staging file on the web server."))
    error = models.TextField(blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("The team a new volume is made for: its capacity is reserved in that team's quota while the "
                    "upload is under way."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload of {self.filename or self.volume_name} into {self.volume_name}"

    @property
    def staging_path(self) -> Path:
        return Path(settings.UPLOAD_STAGING_DIR) / f"{self.pk}.part"

    def settle(self) -> None:
        """Follow a job that ended without telling us (its worker was killed and the reaper failed it)."""
        job = self.job
        if job is None or job.is_active or self.state in (self.State.DONE, self.State.FAILED):
            return
        if job.state != job.State.SUCCEEDED:
            ended = {job.State.FAILED: gettext("The upload job failed."),
                     job.State.CANCELLED: gettext("The upload job cancelled.")}
            self.state, self.error = self.State.FAILED, job.error or ended.get(
                job.state, gettext("The upload job %(state)s.") % {"state": job.state})
            Upload.objects.filter(pk=self.pk, state__in=[self.State.RECEIVING, self.State.SENDING]).update(
                state=self.state, error=self.error)

    def missing(self) -> list[list[int]]:
        return missing_ranges(self.received, self.size)

    def next_offset(self) -> int:
        """Where a client resumes: the end of the first run received from byte 0."""
        missing = self.missing()
        return missing[0][0] if missing else self.size
