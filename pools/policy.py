"""Capacity policy: may a new (or grown) volume go into a pool?

Used by volume create/resize and by provisioning requests. Works on the
inventory's numbers, so call it after a fresh sync when it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from virtstorage.virt.units import binary_size

from .models import StoragePool

# Warn (not refuse) when thin volumes push the pool past this overcommit and no limit is set.
OVERCOMMIT_WARNING = 1.0
# Without an overcommit limit, one thin volume may be at most this many times the pool's capacity.
LARGEST_THIN_VOLUME = 4.0


class PolicyViolation(Exception):
    """The volume would break the pool's capacity policy; the message gives the numbers."""


@dataclass
class PolicyCheck:
    warnings: list[str]


def largest_volume(pool: StoragePool) -> int | None:
    """The largest virtual size one volume may have in the pool, None when its capacity is not known.

    With an overcommit limit, the limit times the capacity (the sum rule below is stricter still).
    Without one, LARGEST_THIN_VOLUME times the capacity: a thin volume may overcommit the pool, but a size
    its file system could never hold (2^63-1 bytes, a typo's extra zeros) is refused here, not by libvirt."""
    if not pool.capacity:
        return None
    factor = float(pool.max_overcommit) if pool.max_overcommit is not None else LARGEST_THIN_VOLUME
    return int(pool.capacity * max(1.0, factor))


def check_volume_fits(pool: StoragePool, *, capacity: int, allocation: int, replacing: int = 0,
                      replacing_allocation: int = 0) -> PolicyCheck:
    """Raise PolicyViolation if a volume of this capacity and allocation breaks the policy.

    `replacing`/`replacing_allocation`: the sizes of a volume being resized, which no longer count.
    """
    warnings: list[str] = []
    limit = largest_volume(pool)
    if limit is not None and capacity > limit:
        values = {"size": binary_size(capacity), "pool": pool.name, "limit": binary_size(limit),
                  "capacity": binary_size(pool.capacity), "overcommit": pool.max_overcommit,
                  "factor": f"{LARGEST_THIN_VOLUME:g}"}
        if pool.max_overcommit is not None:
            message = _("A volume of %(size)s is more than pool %(pool)s can ever hold: at most %(limit)s (its "
                        "overcommit limit %(overcommit)s× its capacity of %(capacity)s).")
        else:
            message = _("A volume of %(size)s is more than pool %(pool)s can ever hold: at most %(limit)s, "
                        "%(factor)s× its capacity of %(capacity)s (the largest thin volume a pool without an "
                        "overcommit limit takes).")
        raise PolicyViolation(message % values)
    extra_allocation = max(0, allocation - replacing_allocation)
    usable = pool.available - pool.reserve_bytes
    if extra_allocation > usable:
        values = {"needed": binary_size(extra_allocation), "pool": pool.name, "usable": binary_size(max(0, usable)),
                  "reserve": binary_size(pool.reserve_bytes), "free": binary_size(pool.available)}
        if pool.reserve_bytes:
            message = _("Needs %(needed)s of disk, but pool %(pool)s has %(usable)s available after keeping the "
                        "reserve of %(reserve)s (%(free)s free in all).")
        else:
            message = _("Needs %(needed)s of disk, but pool %(pool)s has %(usable)s available.")
        raise PolicyViolation(message % values)
    if pool.capacity:
        total = pool.volume_capacity_total - replacing + capacity
        ratio = total / pool.capacity
        if pool.max_overcommit is not None and ratio > float(pool.max_overcommit):
            raise PolicyViolation(
                _("Pool %(pool)s would be overcommitted %(ratio)s× (volumes' virtual sizes %(total)s over capacity "
                  "%(capacity)s); its limit is %(limit)s×.")
                % {"pool": pool.name, "ratio": f"{ratio:.2f}", "total": binary_size(total),
                   "capacity": binary_size(pool.capacity), "limit": pool.max_overcommit}
            )
        if ratio > OVERCOMMIT_WARNING and pool.max_overcommit is None:
            warnings.append(
                _("Thin provisioning: pool %(pool)s will be overcommitted %(ratio)s× (%(total)s of virtual sizes "
                  "on %(capacity)s).")
                % {"pool": pool.name, "ratio": f"{ratio:.2f}", "total": binary_size(total),
                   "capacity": binary_size(pool.capacity)}
            )
    return PolicyCheck(warnings=warnings)
