"""When does a pool run out of free space? Pure functions over a series, no database.

The series is (time, free space less the pool's reserve) over the last FORECAST_BASIS (7 days). A least-squares
line through it gives the trend in bytes a day; at that rate, the latest free space lasts ``days_left`` days.
A flat or growing trend (slope >= 0) is "not filling"; so is a basis shorter than MIN_BASIS or with fewer than
MIN_POINTS samples, since a trend read from a few minutes says nothing about weeks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

FORECAST_BASIS = timedelta(days=7)
MIN_BASIS = timedelta(hours=24)
MIN_POINTS = 10
DAY_SECONDS = 86400.0

FILLING, NOT_FILLING, TOO_SHORT = "filling", "not_filling", "too_short"


@dataclass(frozen=True)
class Forecast:
    status: str  # FILLING, NOT_FILLING or TOO_SHORT
    days_left: float | None  # FILLING only: days until free less reserve reaches 0 (0: it has)
    bytes_per_day: float | None  # the trend's slope (negative: filling); None when TOO_SHORT
    basis_from: datetime | None
    basis_to: datetime | None
    samples: int

    @property
    def filling(self) -> bool:
        return self.status == FILLING


@dataclass(frozen=True)
class Sums:
    """What a least-squares line needs of a series, which a database can add up without sending the rows:
    x is seconds from a reference time, y the free space less the reserve."""

    n: int
    sx: float
    sy: float
    sxy: float
    sxx: float
    first: datetime | None
    last: datetime | None
    latest: int  # y of the last sample

    @classmethod
    def of(cls, series: Sequence[tuple[datetime, int]]) -> Sums:
        if not series:
            return cls(0, 0.0, 0.0, 0.0, 0.0, None, None, 0)
        first = series[0][0]
        xs = [(at - first).total_seconds() for at, _ in series]
        ys = [float(free) for _, free in series]
        return cls(len(series), sum(xs), sum(ys), sum(x * y for x, y in zip(xs, ys, strict=True)),
                   sum(x * x for x in xs), first, series[-1][0], series[-1][1])

    def less(self, reserve: int) -> Sums:
        """The same series with reserve taken off every y (what the database sums is the free space alone)."""
        return Sums(self.n, self.sx, self.sy - self.n * reserve, self.sxy - reserve * self.sx, self.sxx,
                    self.first, self.last, self.latest - reserve)

    def slope(self) -> float | None:
        """Bytes a second; None when every x is the same."""
        spread = self.n * self.sxx - self.sx * self.sx
        if self.n < 2 or spread <= 0:
            return None
        return (self.n * self.sxy - self.sx * self.sy) / spread


def forecast_from(sums: Sums, *, min_basis: timedelta = MIN_BASIS, min_points: int = MIN_POINTS) -> Forecast:
    if sums.n == 0 or sums.first is None or sums.last is None:
        return Forecast(TOO_SHORT, None, None, None, None, 0)
    if sums.n < min_points or sums.last - sums.first < min_basis:
        return Forecast(TOO_SHORT, None, None, sums.first, sums.last, sums.n)
    slope = sums.slope()
    if slope is None:
        return Forecast(TOO_SHORT, None, None, sums.first, sums.last, sums.n)
    per_day = slope * DAY_SECONDS
    if per_day > -1:  # under a byte a day is rounding, not a trend
        return Forecast(NOT_FILLING, None, max(per_day, 0.0), sums.first, sums.last, sums.n)
    days = 0.0 if sums.latest <= 0 else sums.latest / -per_day
    return Forecast(FILLING, days, per_day, sums.first, sums.last, sums.n)


def forecast(series: Sequence[tuple[datetime, int]], *, min_basis: timedelta = MIN_BASIS,
             min_points: int = MIN_POINTS) -> Forecast:
    """The forecast from (time, free less reserve) samples, oldest first, already cut to the basis window."""
    return forecast_from(Sums.of(series), min_basis=min_basis, min_points=min_points)


def within(days_left: float | None, horizon_days: float) -> bool:
    """Whether a forecast's pool fills within the horizon (the dashboard's warning, the admins' notice)."""
    return days_left is not None and days_left <= horizon_days
