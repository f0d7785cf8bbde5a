"""What the pools held over time, per pool and per team, and each pool's latest forecast.

A sample is raw (one per pool per sync), or stands for an hour or a day of raw samples: the periodic task
(history/downsample.py) rolls every complete hour and day up as soon as it is complete, and each resolution is
kept for its own retention (raw a week, hourly 90 days, daily two years), so a chart of any range reads a few
hundred rows. The aggregates a rolled-up row keeps are the ones that stay exact
however often they are rolled up again (an hour's rows into a day):

- the plain columns hold the **last** sample of the bucket, and ``at`` is that sample's time: the chart plots
  the state the pool was really in at a real moment (capacity and volume count are step functions, where a
  mean would invent values), and the last of the last is the last;
- ``*_max`` / ``available_min`` hold the bucket's **peak** (max of maxes is the max): a pool that touched full
  for ten minutes still shows it after a year;
- ``samples`` counts the raw samples the row stands for (a sum of sums), the basis the chart states.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Resolution(models.TextChoices):
    RAW = "raw", _("raw (each sync)")
    HOUR = "hour", _("hourly")
    DAY = "day", _("daily")


class PoolSample(models.Model):
    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    resolution = models.CharField(max_length=4, choices=Resolution.choices, default=Resolution.RAW)
    capacity = models.BigIntegerField()
    allocation = models.BigIntegerField()
    available = models.BigIntegerField()
    virtual_total = models.BigIntegerField(help_text=_("Sum of the volumes' virtual sizes."))
    volume_count = models.PositiveIntegerField()
    allocation_max = models.BigIntegerField()
    virtual_total_max = models.BigIntegerField()
    available_min = models.BigIntegerField()
    samples = models.PositiveIntegerField(default=1)

    class Meta:
        # Also the index every read goes through (a pool's rows of a resolution in a time range).
        constraints = [models.UniqueConstraint(fields=["pool", "resolution", "at"], name="one_poolsample_per_time")]

    def __str__(self) -> str:
        return f"{self.pool_id} {self.resolution} {self.at:%Y-%m-%d %H:%M}"


class TeamSample(models.Model):
    """What counts against a team's quota in a pool (provisioning's rule, see history/teams.py), over time."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="samples")
    pool = models.ForeignKey("pools.StoragePool", on_delete=models.CASCADE, related_name="team_samples")
    at = models.DateTimeField()
    resolution = models.CharField(max_length=4, choices=Resolution.choices, default=Resolution.RAW)
    virtual_bytes = models.BigIntegerField()
    volume_count = models.PositiveIntegerField()
    virtual_bytes_max = models.BigIntegerField()
    samples = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "pool", "resolution", "at"],
                                               name="one_teamsample_per_time")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.pool_id} {self.resolution} {self.at:%Y-%m-%d %H:%M}"


class RollupMark(models.Model):
    """How far the downsampler has rolled one model's rows into one resolution: every bucket before done_until
    has its row. Rolling starts there next time, so a run never reads what an earlier run already rolled."""

    series = models.CharField(max_length=32)  # "pool" or "team"
    resolution = models.CharField(max_length=4, choices=Resolution.choices)
    done_until = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "resolution"], name="one_rollup_mark")]

    def __str__(self) -> str:
        return f"{self.series} {self.resolution} until {self.done_until}"


class PoolForecast(models.Model):
    """The pool's latest forecast (history/forecast.py), and whether admins were told it fills soon."""

    pool = models.OneToOneField("pools.StoragePool", on_delete=models.CASCADE, related_name="forecast")
    computed_at = models.DateTimeField()
    days_left = models.FloatField(null=True, help_text=_("Empty: not filling (or too short a basis)."))
    bytes_per_day = models.FloatField(null=True, help_text=_("The trend of free space less the reserve."))
    basis_from = models.DateTimeField(null=True)
    basis_to = models.DateTimeField(null=True)
    basis_samples = models.PositiveIntegerField(default=0)
    in_horizon = models.BooleanField(default=False, help_text=_("Admins were notified; reset when it leaves."))

    def __str__(self) -> str:
        return f"forecast of {self.pool_id}: {self.days_left}"

    @property
    def days(self) -> int | None:
        """days_left rounded for people: 0 only once it has run out, at least 1 before."""
        if self.days_left is None:
            return None
        return 0 if self.days_left <= 0 else max(1, round(self.days_left))
