"""Asking for the inventory to be brought up to date, from code below the app that does it.

A job that changed pools (pools/, volumes/) calls ``resync``; the inventory app (inventory/apps.py)
answers by syncing those pools before the job ends, so a finished job's page shows libvirt's view.
A job that changed one or two volumes names them instead: listing a pool of 10,000 volumes after
each create would cost seconds of CPU and hold the database's write lock.
The sender never imports the inventory: the arrow points up only through this signal.
"""

from __future__ import annotations

from django.dispatch import Signal

from .models import Host

# sender=Host, host=<Host>, pool_names=<list[str] | None: the whole host>,
# volumes=<list[tuple[str, str]] | None: (pool, volume) pairs, only these changed>, vms=<bool: with volumes>
pools_changed = Signal()
# The inventory stored these pools of the host (their rows have synced_at == at): history records them.
pools_synced = Signal()  # sender=Host, host=<Host>, at=<datetime>


def resync(host: Host, pool_names: list[str] | None = None,
           volumes: list[tuple[str, str]] | None = None, *, vms: bool = False) -> None:
    """Sync these pools of the host (None: all of it) and its VMs now, in this process.

    volumes, (pool name, volume name) pairs, says only these volumes changed (were created, written,
    resized or removed): the inventory then reads these volumes and their pools' own facts, not every
    volume of the pools, and the host's VMs only when vms is true (a job that changed a VM's disks).
    volumes=[] with vms=True syncs the VMs alone. pool_names goes with volumes=None only.
    """
    if volumes is not None and pool_names is not None:
        raise ValueError("resync: name the pools to sync in full, or the volumes that changed, not both")
    pools_changed.send(sender=Host, host=host, pool_names=None if pool_names is None else list(pool_names),
                       volumes=None if volumes is None else [(pool, name) for pool, name in volumes], vms=vms)
