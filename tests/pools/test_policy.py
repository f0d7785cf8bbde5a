"""Capacity policy: unit tests on unsaved pools (pure arithmetic), numbers in every refusal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pools.models import StoragePool
from pools.policy import PolicyViolation, check_volume_fits

GiB = 1024**3


def _pool(**kwargs) -> StoragePool:
    values = {"name": "vms", "capacity": 100 * GiB, "allocation": 40 * GiB, "available": 60 * GiB,
              "volume_capacity_total": 120 * GiB}
    values.update(kwargs)
    return StoragePool(**values)


def test_thin_volume_past_the_overcommit_limit_is_refused_with_numbers():
    pool = _pool(max_overcommit=Decimal("1.50"))
    with pytest.raises(PolicyViolation) as exc:
        check_volume_fits(pool, capacity=40 * GiB, allocation=0)
    message = str(exc.value)
    assert "1.60×" in message and "160 GiB" in message and "100 GiB" in message and "1.50×" in message


def test_thin_volume_up_to_the_limit_passes():
    pool = _pool(max_overcommit=Decimal("1.50"))
    assert check_volume_fits(pool, capacity=30 * GiB, allocation=0).warnings == []


def test_preallocated_volume_eating_into_the_reserve_is_refused_with_numbers():
    pool = _pool(reserve_bytes=20 * GiB)
    with pytest.raises(PolicyViolation) as exc:
        check_volume_fits(pool, capacity=45 * GiB, allocation=45 * GiB)
    message = str(exc.value)
    assert "45.0 GiB" in message and "40.0 GiB available" in message and "reserve of 20.0 GiB" in message
    assert "60.0 GiB free in all" in message


def test_preallocated_volume_within_the_free_space_above_the_reserve_passes():
    pool = _pool(reserve_bytes=20 * GiB)
    check_volume_fits(pool, capacity=40 * GiB, allocation=40 * GiB)


def test_preallocated_volume_larger_than_the_free_space_is_refused_without_a_reserve():
    with pytest.raises(PolicyViolation, match="60.0 GiB available"):
        check_volume_fits(_pool(), capacity=61 * GiB, allocation=61 * GiB)


def test_resize_counts_only_the_growth():
    pool = _pool(max_overcommit=Decimal("1.30"), reserve_bytes=50 * GiB)
    # Growing a 10 GiB preallocated volume to 15 GiB needs 5 GiB more: within 60 - 50.
    check_volume_fits(pool, capacity=15 * GiB, allocation=15 * GiB, replacing=10 * GiB,
                      replacing_allocation=10 * GiB)
    with pytest.raises(PolicyViolation, match="1.31×"):
        check_volume_fits(pool, capacity=21 * GiB, allocation=0, replacing=10 * GiB)


def test_without_a_limit_overcommit_only_warns():
    check = check_volume_fits(_pool(), capacity=10 * GiB, allocation=0)
    assert len(check.warnings) == 1 and "1.30×" in check.warnings[0]


def test_stopped_pool_without_capacity_skips_the_ratio():
    pool = _pool(capacity=0, available=0, max_overcommit=Decimal("1.0"))
    check_volume_fits(pool, capacity=10 * GiB, allocation=0)


@pytest.mark.parametrize("total,limit,level", [
    (70, "1.00", ""), (85, "1.00", "warn"), (100, "1.00", "error"), (150, "1.00", "error"),
    (110, None, "warn"), (90, None, ""),
])
def test_overcommit_level_turns_amber_before_the_limit(total, limit, level):
    pool = _pool(volume_capacity_total=total * GiB, max_overcommit=Decimal(limit) if limit else None)
    assert pool.overcommit_level == level


def test_policy_form_parses_sizes_and_keeps_exact_values():
    from pools.forms import PolicyForm
    from virtstorage.virt.units import exact_size_text as size_text

    assert size_text(10 * GiB) == "10G" and size_text(1536) == "1536" and size_text(3 * 1024**2) == "3M"
    pool = _pool()
    form = PolicyForm({"max_overcommit": "2", "reserve": "1.5 GiB"}, instance=pool)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["reserve"] == 1536 * 1024**2
    form = PolicyForm({"max_overcommit": "", "reserve": "200G"}, instance=pool)
    assert not form.is_valid() and "larger than the whole pool" in str(form.errors)
