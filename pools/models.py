from __future__ import annotations

from django.db import models
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import access
from jobs.rows import hold


class PoolRemoved(Http404):
    """The pool left the inventory (libvirt no longer has it, or its host was removed) while a request wrote
    under it: a 404, as if the request had come a moment later."""


class PoolQuerySet(models.QuerySet):
    def visible_to(self, user) -> PoolQuerySet:
        """The pools one of the user's teams may use (every pool for an admin)."""
        return access.visible(self, user, "pk")

    def want_rescan(self) -> int:
        """Mark these pools as written behind libvirt's back without a rescan (rescan_wanted_at); how many."""
        return self.update(rescan_wanted_at=timezone.now())


class StoragePool(models.Model):
    """A libvirt storage pool as last seen by a sync, plus the team's capacity policy."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Running")
        INACTIVE = "inactive", _("Stopped")

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="pools")
    name = models.CharField(max_length=255)
    uuid = models.CharField(max_length=36, blank=True)
    type = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INACTIVE)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    capacity = models.BigIntegerField(default=0)
    allocation = models.BigIntegerField(default=0)
    available = models.BigIntegerField(default=0)
    target_path = models.CharField(max_length=4096, blank=True)
    xml = models.TextField(blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # The last full sync that listed every volume of the pool: it writes only the rows that changed, so a
    # volume's "synced" is the later of this and its own row's (volumes/models.py Volume.listed_at).
    volumes_listed_at = models.DateTimeField(null=True, blank=True)
    # Kept by the sync so lists never aggregate volumes per pool.
    volume_count = models.PositiveIntegerField(default=0)
    volume_capacity_total = models.BigIntegerField(default=0)
    # Set when a job wrote a raw image into a volume's file in place without having libvirt rescan the pool
    # (streams.after_write_in_place), so libvirt's figures for the pool (allocation, free space) predate the write;
    # the next periodic sync rescans the pool and clears it (inventory/sync.py): one rescan for any number of writes.
    rescan_wanted_at = models.DateTimeField(null=True, blank=True)
    # Capacity policy (issue: pool lifecycle). None means no limit.
    max_overcommit = models.DecimalField(
        max_digits=6, decimal_places=2, null=True, blank=True,
        help_text=_("Largest allowed sum of volume capacities / pool capacity, e.g. 1.50."),
    )
    reserve_bytes = models.BigIntegerField(default=0, help_text=_("Free space that volumes may not use."))

    teams = models.ManyToManyField("accounts.Team", through="PoolGrant", related_name="pools", blank=True)

    objects = PoolQuerySet.as_manager()

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="unique_pool_name_per_host")]

    def __str__(self) -> str:
        # In the reader's language: form choices show it (the clone's target pool, the request's pool).
        return gettext("%(pool)s on %(host)s") % {"pool": self.name, "host": self.host} if self.host_id else self.name

    def get_absolute_url(self) -> str:
        return reverse("pools:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state == self.State.ACTIVE

    def hold(self) -> None:
        """Keep this pool in the inventory until the transaction ends (jobs/rows.py), so that a row written under
        it (an upload, a request, a grant) is not orphaned by a sync removing it; PoolRemoved when it is gone."""
        if not hold(self):
            raise self.removed()

    def removed(self) -> PoolRemoved:
        """What to raise when this pool's row is found gone."""
        return PoolRemoved(_("Pool %(pool)s was removed from the inventory meanwhile: libvirt no longer has it, "
                             "or its host was removed.") % {"pool": self.name})

    @property
    def overcommit(self) -> float | None:
        """Sum of volume capacities (virtual sizes) over pool capacity."""
        if not self.capacity:
            return None
        return self.volume_capacity_total / self.capacity

    # Share of the overcommit limit at which the pool page turns the ratio amber.
    OVERCOMMIT_WARN_FRACTION = 0.8

    @property
    def overcommit_level(self) -> str:
        """"error" at or past the limit, "warn" when close to it (or past 1× with no limit), else ""."""
        ratio = self.overcommit
        if ratio is None:
            return ""
        if self.max_overcommit is not None:
            limit = float(self.max_overcommit)
            if ratio >= limit:
                return "error"
            return "warn" if ratio >= limit * self.OVERCOMMIT_WARN_FRACTION else ""
        return "warn" if ratio > 1 else ""

    @property
    def usable_available(self) -> int:
        """Free space volumes may still take: available minus the reserve."""
        return max(0, self.available - self.reserve_bytes)

    @property
    def used_percent(self) -> float:
        return 100.0 * self.allocation / self.capacity if self.capacity else 0.0


class PoolGrant(models.Model):
    """A team may use a pool, within its quota there (empty: no limit)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="grants")
    pool = models.ForeignKey(StoragePool, on_delete=models.CASCADE, related_name="grants")
    max_virtual_bytes = models.BigIntegerField(null=True, blank=True,
                                               help_text=_("Largest sum of the team's volumes' virtual sizes here."))
    max_volumes = models.PositiveIntegerField(null=True, blank=True,
                                              help_text=_("Most volumes the team may have here."))
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "pool__name"]
        constraints = [models.UniqueConstraint(fields=["team", "pool"], name="one_grant_per_team_and_pool")]

    def __str__(self) -> str:
        return f"{self.team} may use {self.pool}"
