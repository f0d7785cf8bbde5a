"""Asking for the inventory to be brought up to date, from code below the app that does it.

A job that changed pools (pools/, volumes/) calls ``resync``; the inventory app (inventory/apps.py)
answers by syncing those pools before the job ends, so a finished job's page shows libvirt's view.
The sender never imports the inventory: the arrow points up only through this signal.
"""

from __future__ import annotations

from django.dispatch import Signal

from .models import Host

pools_changed = Signal()  # sender=Host, host=<Host>, pool_names=<list[str] | None: the whole host>
# The inventory stored these pools of the host (their rows have synced_at == at): history records them.
pools_synced = Signal()  # sender=Host, host=<Host>, at=<datetime>


def resync(host: Host, pool_names: list[str] | None = None) -> None:
    """Sync these pools of the host (None: all of it) now, in this process."""
    pools_changed.send(sender=Host, host=host, pool_names=None if pool_names is None else list(pool_names))
