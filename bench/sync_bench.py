"""Benchmark: inventory sync of a pool with 10,000 volumes vs `virsh vol-list --details`, and pool page render.

Run with `make bench` (all benchmarks) or `.venv/bin/python -m bench.sync_bench`. Needs libvirtd and root.
The sync compared with virsh is the everyday one: nothing changed since the last, so it rewrites no volume row
(one UPDATE sets their synced_at). One more is timed with 1% of the files grown behind libvirt's back. On SQLite
(a file of its own) by default; with DATABASE_URL naming a PostgreSQL server, on a database of its own there
(made and dropped by the run). Prints times and ratios; writes bench/results/sync-<database>.json.
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import URI, drop_database, own_database, remove_pool, setup_django, virsh

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VOLUMES = int(os.environ.get("BENCH_SYNC_VOLUMES", "10000"))


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Best of `repeat` runs: the least disturbed measurement."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


TEAM_VIEW_REQUESTS = 200


def team_member_vs_admin(host, pool) -> dict:
    """The pool page of the big pool, p95 over TEAM_VIEW_REQUESTS requests each, for an admin and for a member
    of a team granted 20 of 200 pools (the other pools are inventory rows only), alternating."""
    import statistics

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Membership, Team
    from accounts.roles import ADMIN, MEMBER, grant
    from accounts.teams import join
    from pools.models import PoolGrant, StoragePool

    others = StoragePool.objects.bulk_create(
        StoragePool(host=host, name=f"other-{i:03d}", state=StoragePool.State.ACTIVE) for i in range(199))
    team = Team.objects.create(name="bench-team")
    PoolGrant.objects.bulk_create(PoolGrant(team=team, pool=p) for p in [pool, *others[:19]])
    clients = {}
    for kind in ("admin", "member"):
        user = get_user_model().objects.create_user(f"bench-{kind}", password="bench-password-1")
        grant(user, ADMIN if kind == "admin" else MEMBER)
        if kind == "member":
            join(user, team, Membership.Role.MEMBER)
        clients[kind] = Client(HTTP_HOST="localhost")
        clients[kind].force_login(user)
    url = reverse("pools:detail", args=[pool.pk])
    times: dict[str, list[float]] = {"admin": [], "member": []}
    for _ in range(TEAM_VIEW_REQUESTS):
        for kind, client in clients.items():
            start = time.perf_counter()
            assert client.get(url).status_code == 200
            times[kind].append(time.perf_counter() - start)
    p95 = {kind: statistics.quantiles(t, n=20)[-1] * 1000 for kind, t in times.items()}
    return {"admin_p95_ms": round(p95["admin"], 1), "member_p95_ms": round(p95["member"], 1),
            "ratio": round(p95["member"] / p95["admin"], 2)}


def main() -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="vs-bench-sync-", dir=ROOT / "var"))
    pool_name = f"vsbench-{uuid.uuid4().hex[:8]}"
    pool_dir = workdir / pool_name
    pool_dir.mkdir()
    for i in range(VOLUMES):  # sparse files: libvirt sees 10,000 raw volumes after a refresh
        with open(pool_dir / f"vol-{i:05d}.img", "wb") as f:
            f.truncate(1024**2 * (1 + i % 64))
    server_url = os.environ.get("DATABASE_URL", "")
    pg_name = f"vsbench_{pool_name[8:]}" if server_url.startswith(("postgres://", "postgresql://")) else ""
    try:
        virsh("pool-define-as", pool_name, "dir", "--target", str(pool_dir))
        virsh("pool-start", pool_name)
        setup_django(workdir / "bench.sqlite3", own_database(server_url, pg_name) if pg_name else None)
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.urls import reverse

        from accounts.roles import MEMBER, grant
        from accounts.teams import join
        from hosts.models import Host
        from inventory.sync import sync_host
        from pools.models import StoragePool

        host = Host.objects.create(name="bench", uri=URI)
        virsh_s, listing = timed(lambda: virsh("vol-list", "--details", pool_name))
        assert len(listing.strip().splitlines()) == VOLUMES
        first_s, _ = timed(lambda: sync_host(host, pool_names=[pool_name]), repeat=1)
        sync_s, result = timed(lambda: sync_host(host, pool_names=[pool_name]))
        assert result.volumes == VOLUMES, result
        changed = range(0, VOLUMES, 100)  # 1% of the files grow behind libvirt's back: those rows are rewritten
        for i in changed:
            os.truncate(pool_dir / f"vol-{i:05d}.img", 1024**2 * (2 + i % 64))
        changed_s, _ = timed(lambda: sync_host(host, pool_names=[pool_name]), repeat=1)
        refresh_s, _ = timed(lambda: sync_host(host, refresh=True, pool_names=[pool_name]), repeat=1)

        pool = StoragePool.objects.get(host=host, name=pool_name)
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        grant(user, MEMBER)
        join(user)  # the default team: may use every pool
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        url = reverse("pools:detail", args=[pool.pk])
        page_s, response = timed(lambda: client.get(url), repeat=5)
        assert response.status_code == 200, response.status_code
        last_page_s, _ = timed(lambda: client.get(url, {"page": VOLUMES // 50, "sort": "-allocation"}), repeat=5)
        search_s, _ = timed(lambda: client.get(reverse("pools:volumes", args=[pool.pk]), {"q": "vol-0999"}), repeat=5)

        team_view = team_member_vs_admin(host, pool)
        results = {
            "database": "postgresql" if pg_name else "sqlite",
            "team_view": team_view,
            "volumes": VOLUMES,
            "virsh_s": round(virsh_s, 3),
            "app_s": round(sync_s, 3),
            "ratio": round(sync_s / virsh_s, 2),
            "first_sync_s": round(first_s, 3),
            "sync_with_1pct_changed_s": round(changed_s, 3),
            "sync_with_refresh_s": round(refresh_s, 3),
            "pool_page_s": round(page_s, 4),
            "pool_page_last_page_sorted_s": round(last_page_s, 4),
            "volume_search_s": round(search_s, 4),
            "disk_size_bytes": None,
            "load_average": [round(load, 2) for load in os.getloadavg()],  # the machine may be shared: read with it
        }
        print(f"sync of {VOLUMES} volumes on {results['database']}: app {sync_s:.2f} s (first {first_s:.2f} s, "
              f"with refresh {refresh_s:.2f} s, with 1% changed {changed_s:.2f} s) vs virsh vol-list --details "
              f"{virsh_s:.2f} s -> ratio app/virsh {sync_s / virsh_s:.2f} (load average {os.getloadavg()[0]:.2f})")
        print(f"pool page: {page_s * 1000:.0f} ms; last page sorted by disk size: {last_page_s * 1000:.0f} ms; "
              f"search: {search_s * 1000:.0f} ms")
        print(f"pool page of {VOLUMES} volumes, p95 over {TEAM_VIEW_REQUESTS} requests: admin "
              f"{team_view['admin_p95_ms']} ms, member of a team that sees 20 of 200 pools "
              f"{team_view['member_p95_ms']} ms -> ratio member/admin {team_view['ratio']}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"sync-{results['database']}.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        remove_pool(pool_name)
        shutil.rmtree(workdir, ignore_errors=True)
        if pg_name:
            from django.db import connections

            connections.close_all()
            drop_database(server_url, pg_name)


if __name__ == "__main__":
    main()
