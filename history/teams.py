"""What counts against each team's quota in some pools, for the team samples.

The rule is provisioning's (provisioning/quota.py, a ``Ledger``), and provisioning stands above history: history
must not import it. The project shell, which knows every app, names the ledger in settings.HISTORY_TEAM_LEDGER
(as it names authentication backends and beat tasks), and history calls it by that name. The arrow still points
up only from the shell; history depends on the ledger's two methods, ``read(pairs)`` and
``usage(team_id, pool_id)`` (whose ``total_count`` / ``total_capacity`` are what the quota is checked against).
Without the setting, no team samples are recorded and the team charts say so.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils.module_loading import import_string

from pools.models import PoolGrant

Pair = tuple[int, int]  # (team id, pool id)


def ledger_class():
    path = getattr(settings, "HISTORY_TEAM_LEDGER", "")
    return import_string(path) if path else None


def usage_in(pool_ids: Iterable[int]) -> dict[Pair, tuple[int, int]]:
    """(volumes, virtual bytes) counting against the quota of every grant in these pools, in a few queries."""
    ledger_cls = ledger_class()
    pairs = set(PoolGrant.objects.filter(pool_id__in=list(pool_ids)).values_list("team_id", "pool_id"))
    if ledger_cls is None or not pairs:
        return {}
    ledger = ledger_cls.read(pairs)
    found = {}
    for team_id, pool_id in pairs:
        usage = ledger.usage(team_id, pool_id)
        found[(team_id, pool_id)] = (usage.total_count, usage.total_capacity)
    return found
