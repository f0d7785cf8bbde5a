"""The forecast on synthetic series: linear fill, flat, shrinking use, too short a basis, already full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from history.forecast import FILLING, NOT_FILLING, TOO_SHORT, Sums, forecast, forecast_from, within

GiB = 1024**3
START = datetime(2026, 1, 1, tzinfo=UTC)


def series(free_at, days: float = 7, step: timedelta = timedelta(minutes=1)):
    """(time, free less reserve) every step for `days`, free_at(seconds since start) giving the value."""
    count = int(timedelta(days=days) / step) + 1
    return [(START + i * step, int(free_at((i * step).total_seconds()))) for i in range(count)]


def test_linear_fill_gives_the_days_left():
    # 100 GiB free, losing 2 GiB a day: after 7 days 86 GiB are left, which last 43 more days.
    result = forecast(series(lambda s: 100 * GiB - 2 * GiB * s / 86400))
    assert result.status == FILLING and result.filling
    assert result.bytes_per_day == pytest.approx(-2 * GiB, rel=1e-6)
    assert result.days_left == pytest.approx(43, abs=0.01)
    assert result.samples == 7 * 1440 + 1
    assert result.basis_from == START and result.basis_to == START + timedelta(days=7)


def test_noise_does_not_move_a_linear_trend():
    wobble = [0, 3 * GiB, -3 * GiB, 1 * GiB]  # averages out over each 4 samples
    points = series(lambda s: 50 * GiB - 1 * GiB * s / 86400, step=timedelta(hours=1))
    noisy = [(at, free + wobble[i % 4]) for i, (at, free) in enumerate(points)]
    result = forecast(noisy)
    assert result.bytes_per_day == pytest.approx(-GiB, rel=0.05)
    assert result.days_left == pytest.approx(noisy[-1][1] / -result.bytes_per_day, rel=1e-9)  # at today's free


def test_flat_is_not_filling():
    result = forecast(series(lambda s: 10 * GiB))
    assert result.status == NOT_FILLING and result.days_left is None
    assert result.bytes_per_day == pytest.approx(0, abs=1)


def test_shrinking_use_is_not_filling():
    result = forecast(series(lambda s: 10 * GiB + GiB * s / 86400))
    assert result.status == NOT_FILLING and result.days_left is None
    assert result.bytes_per_day == pytest.approx(GiB, rel=1e-6)


def test_too_short_a_basis_says_so():
    assert forecast(series(lambda s: 10 * GiB - s * 1000, days=0.5)).status == TOO_SHORT
    assert forecast([(START, 5), (START + timedelta(days=3), 1)]).status == TOO_SHORT  # two points
    assert forecast([]).status == TOO_SHORT


def test_a_pool_past_its_reserve_is_full_now():
    result = forecast(series(lambda s: 1 * GiB - 2 * GiB * s / 86400, days=2))
    assert result.status == FILLING and result.days_left == 0


def test_sums_from_the_database_give_the_same_forecast():
    """The task sums x (seconds from now, negative), y (free space), xy and xx in SQL, then takes the reserve
    off: the same line as the series less the reserve, x from its first sample."""
    points = series(lambda s: 100 * GiB - 2 * GiB * s / 86400, step=timedelta(minutes=10))
    now = points[-1][0] + timedelta(minutes=3)
    xs = [(at - now).total_seconds() for at, _ in points]
    ys = [float(free) for _, free in points]
    summed = Sums(len(xs), sum(xs), sum(ys), sum(x * y for x, y in zip(xs, ys, strict=True)),
                  sum(x * x for x in xs), points[0][0], points[-1][0], points[-1][1])
    reserve = 6 * GiB
    by_sums = forecast_from(summed.less(reserve))
    by_series = forecast([(at, free - reserve) for at, free in points])
    assert by_sums.days_left == pytest.approx(by_series.days_left, rel=1e-9) == pytest.approx(40, abs=0.01)
    assert by_sums.bytes_per_day == pytest.approx(by_series.bytes_per_day, rel=1e-9)
    assert Sums.of([(START, 1), (START, 5)]).slope() is None


def test_horizon():
    assert within(3.0, 14) and within(14, 14) and not within(14.5, 14) and not within(None, 14)
