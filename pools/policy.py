"""Capacity policy: may a new (or grown) volume go into a pool?

Used by volume create/resize and by provisioning requests. Works on the
inventory's numbers, so call it after a fresh sync when it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtstorage.templatetags.sizes import binary_size

from .models import StoragePool

# Warn (not refuse) when thin volumes push the pool past this overcommit and no limit is set.
OVERCOMMIT_WARNING = 1.0


class PolicyViolation(Exception):
    """The volume would break the pool's capacity policy; the message gives the numbers."""


@dataclass
class PolicyCheck:
    warnings: list[str]


def check_volume_fits(pool: StoragePool, *, capacity: int, allocation: int, replacing: int = 0,
                      replacing_allocation: int = 0) -> PolicyCheck:
    """Raise PolicyViolation if a volume of this capacity and allocation breaks the policy.

    `replacing`/`replacing_allocation`: the sizes of a volume being resized, which no longer count.
    """
    warnings: list[str] = []
    extra_allocation = max(0, allocation - replacing_allocation)
    usable = pool.available - pool.reserve_bytes
    if extra_allocation > usable:
        reserve = (f" after keeping the reserve of {binary_size(pool.reserve_bytes)} "
                   f"({binary_size(pool.available)} free in all)") if pool.reserve_bytes else ""
        raise PolicyViolation(
            f"Needs {binary_size(extra_allocation)} of disk, but pool {pool.name} has "
            f"{binary_size(max(0, usable))} available{reserve}."
        )
    if pool.capacity:
        total = pool.volume_capacity_total - replacing + capacity
        ratio = total / pool.capacity
        if pool.max_overcommit is not None and ratio > float(pool.max_overcommit):
            raise PolicyViolation(
                f"Pool {pool.name} would be overcommitted {ratio:.2f}× (volumes' virtual sizes "
                f"{binary_size(total)} over capacity {binary_size(pool.capacity)}); its limit is "
                f"{pool.max_overcommit}×."
            )
        if ratio > OVERCOMMIT_WARNING and pool.max_overcommit is None:
            warnings.append(
                f"Thin provisioning: pool {pool.name} will be overcommitted {ratio:.2f}× "
                f"({binary_size(total)} of virtual sizes on {binary_size(pool.capacity)})."
            )
    return PolicyCheck(warnings=warnings)
