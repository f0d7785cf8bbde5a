"""Benchmark: the approval queue with 1,000 pending requests on SQLite, as an admin through Django's test client.

Run with `make bench` (all benchmarks) or `.venv/bin/python -m bench.approvals_bench`. Needs no libvirt: the
hosts, pools, volumes and requests are rows (``fill_queue``, which tests/provisioning/test_queue_pages.py uses
too). Each page shows what approving would do to the pool and to the team's quota, with every reservation
counted. Times the first page and filtered pages (by team, by pool, both; a later page) BENCH_APPROVALS_REPEAT
times each and prints p50/p95 and the queries per page at 50 and 200 rows a page. Writes
bench/results/approvals.json. Not a test: nothing here asserts a speed (the target is p95 <= 100 ms).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.common import page_timings, setup_django

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PENDING = int(os.environ.get("BENCH_APPROVALS_PENDING", "1000"))
REPEAT = int(os.environ.get("BENCH_APPROVALS_REPEAT", "200"))
GiB = 1024**3


@dataclass
class Queue:
    admin: object
    teams: list
    pools: list


def fill_queue(pending: int, *, teams: int = 8, pools: int = 12, seed: int = 7) -> Queue:
    """An inventory of two hosts with pools, teams with quotas in some of them, volumes the teams' ready
    requests made, approved requests not made yet (reservations) and `pending` requests, oldest first."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Team
    from accounts.roles import ADMIN, MEMBER, grant
    from accounts.teams import join
    from hosts.models import Host
    from pools.models import PoolGrant, StoragePool
    from provisioning.models import ProvisioningRequest
    from volumes.models import Volume

    rng = random.Random(seed)
    User = get_user_model()
    admin = User.objects.create_user("queue-admin", password="queue-password-1")
    grant(admin, ADMIN)
    hosts = [Host.objects.create(name=f"kvm{n}", uri=f"qemu+ssh://kvm{n}.example/system") for n in (1, 2)]
    pool_rows = [StoragePool.objects.create(
        host=hosts[n % 2], name=f"pool{n:02d}", type="dir", state="active", capacity=4096 * GiB,
        allocation=1024 * GiB, available=3072 * GiB, volume_capacity_total=2048 * GiB, target_path=f"/srv/p{n}",
        max_overcommit=None if n % 3 else "1.50", reserve_bytes=(n % 4) * 64 * GiB) for n in range(pools)]
    team_rows = [Team.objects.create(name=f"team{n}") for n in range(teams)]
    requesters = []
    for team in team_rows:
        user = User.objects.create_user(f"user-{team.name}")
        grant(user, MEMBER)
        join(user, team, "member")
        requesters.append(user)
    pairs = [(t, p) for t in range(teams) for p in range(pools) if (t + p) % 3 == 0]
    PoolGrant.objects.bulk_create(PoolGrant(team=team_rows[t], pool=pool_rows[p], max_virtual_bytes=(t + 1) * 512 * GiB,
                                            max_volumes=20 + t) for t, p in pairs)
    Request = ProvisioningRequest
    made = []
    for i, (t, p) in enumerate(pairs):
        for k in range(3):
            volume = Volume.objects.create(pool=pool_rows[p], name=f"made-{i}-{k}.qcow2", format="qcow2",
                                           capacity=(k + 1) * 8 * GiB, allocation=GiB, team=team_rows[t])
            made.append(Request(team=team_rows[t], pool=pool_rows[p], requested_by=requesters[t], name=volume.name,
                                capacity=volume.capacity, volume=volume, state="ready"))
        made.append(Request(team=team_rows[t], pool=pool_rows[p], requested_by=requesters[t], name=f"coming-{i}.img",
                            capacity=16 * GiB, preallocation="full", format="raw", state="approved"))
    Request.objects.bulk_create(made)
    start = timezone.now() - timedelta(days=30)
    waiting = []
    for n in range(pending):
        t, p = pairs[rng.randrange(len(pairs))]
        waiting.append(Request(team=team_rows[t], pool=pool_rows[p], requested_by=requesters[t],
                               name=f"req-{n:05d}.qcow2", capacity=rng.choice((8, 16, 32, 64, 900)) * GiB,
                               preallocation=rng.choice(("off", "off", "full")), purpose=f"bench request {n}"))
    rows = Request.objects.bulk_create(waiting)
    for n, row in enumerate(rows):  # created_at is auto_now_add: spread the requests over the month, oldest first
        row.created_at = start + timedelta(minutes=n)
    Request.objects.bulk_update(rows, ["created_at"], batch_size=500)
    return Queue(admin=admin, teams=team_rows, pools=pool_rows)


def main() -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="vs-bench-approvals-", dir=ROOT / "var"))
    try:
        setup_django(workdir / "bench.sqlite3")
        from django.db import connection
        from django.test import Client
        from django.urls import reverse

        queue = fill_queue(PENDING)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        client = Client(HTTP_HOST="localhost")
        client.force_login(queue.admin)
        url = reverse("requests:queue")
        team, pool = queue.teams[3], queue.pools[0]
        scenarios = {
            "first page": {},
            "by team": {"team": team.pk},
            "by pool": {"pool": pool.pk},
            "by team and pool": {"team": queue.teams[0].pk, "pool": pool.pk},
            "page 10": {"page": 10},
        }
        results: dict = {"pending": PENDING, "repeat": REPEAT, "pages": {}}
        for name, params in scenarios.items():
            results["pages"][name] = found = page_timings(client, url, params, REPEAT, row=b'<tr id="queue-')
            print(f"{name:>18}: p50 {found['p50_ms']:6.1f} ms  p95 {found['p95_ms']:6.1f} ms  {found['rows']} rows  "
                  f"queries {found['queries_50']} (50/page) {found['queries_200']} (200/page)", flush=True)
        connection.close()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "approvals.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
