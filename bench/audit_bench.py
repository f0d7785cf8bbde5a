"""Benchmark: the audit page over 1,000,000 records on SQLite, as an admin through Django's test client.

Run with `make bench` (all benchmarks) or `.venv/bin/python -m bench.audit_bench`. Needs no libvirt.
Fills the log with raw executemany (one transaction), then times the newest page and filtered pages
(by user, action, target, target text, a date range, a deep page) BENCH_AUDIT_REPEAT times each and prints
p50/p95 and the queries per page at 50 and 200 records a page. Also the COUNT(*) a numbered paginator would
run on every page, and a filtered CSV export. Writes bench/results/audit.json. Not a test: nothing here
asserts a speed (the target is p95 <= 100 ms).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import page_timings, setup_django

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORDS = int(os.environ.get("BENCH_AUDIT_RECORDS", "1000000"))
REPEAT = int(os.environ.get("BENCH_AUDIT_REPEAT", "200"))
USERS = 50
BATCH = 50_000
ACTIONS = [("login", 30), ("logout", 10), ("volume.create", 10), ("volume.delete", 5), ("volume.resize", 3),
           ("volume.clone", 3), ("download", 12), ("upload", 6), ("upload.create", 6), ("pool.start", 2),
           ("pool.stop", 2), ("pool.policy", 1), ("host.sync", 6), ("host.edit", 1), ("login.failed", 3)]


def fill(count: int, user_ids: list[int]) -> float:
    """count records over the last year, oldest first, straight into the table."""
    from django.db import connection, transaction

    rng = random.Random(7)
    actions, weights = zip(*ACTIONS, strict=True)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / count
    sql = ("INSERT INTO audit_auditrecord (at, user_id, username, team, action, target_type, target_id, target, "
           "outcome, client_ip, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, count)):
                n = rng.randrange(USERS)
                action = rng.choices(actions, weights)[0]
                kind = "user" if action.startswith("log") else ("pool" if action.startswith("pool") else "volume")
                target = rng.randrange(5000)
                text = {"user": f"user user{n:02d}", "pool": f"pool p{target % 100} on kvm{target % 10}",
                        "volume": f"volume v{target}.img in pool p{target % 100} on kvm{target % 10}"}[kind]
                rows.append(((start + step * i).strftime("%Y-%m-%d %H:%M:%S.%f"), user_ids[n], f"user{n:02d}",
                             f"team{n % 8}", action, kind, str(target), text,
                             "ok" if i % 17 else "failed", f"10.{n}.{i % 250}.{i % 199}", json.dumps({"n": i})))
            cursor.executemany(sql, rows)
    cursor = connection.cursor()
    cursor.execute("ANALYZE")
    return time.perf_counter() - began


def main() -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="vs-bench-audit-", dir=ROOT / "var"))
    try:
        setup_django(workdir / "bench.sqlite3")
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.urls import reverse

        from accounts.roles import ADMIN, grant
        from audit.models import AuditRecord
        from audit.pages import cursor

        User = get_user_model()
        admin = User.objects.create_user("bench-admin", password="bench-password-1")
        grant(admin, ADMIN)
        user_ids = [User.objects.create_user(f"user{n:02d}").pk for n in range(USERS)]
        fill_s = fill(RECORDS, user_ids)
        print(f"filled {RECORDS:,} records in {fill_s:.1f} s", flush=True)

        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        url = reverse("audit:list")
        middle = AuditRecord.objects.order_by("-at", "-id")[RECORDS // 2]
        month = (datetime.now(UTC) - timedelta(days=200)).date()
        scenarios = {
            "newest page": {},
            "by user": {"user": "user07"},
            "by action": {"action": "volume.delete"},
            "by action prefix": {"action": "pool."},
            "by target": {"target_type": "volume", "target_id": "1234"},
            "by target text": {"target": "on kvm3"},
            "by rare target text": {"target": "v4321.img"},  # ~1 row in 5,000: a scan of the table
            "by date range": {"since": month.isoformat(), "until": (month + timedelta(days=30)).isoformat()},
            "deep page (middle)": {"before": cursor(middle)},
            "by user, deep page": {"user": "user07", "before": cursor(middle)},
        }
        results: dict = {"records": RECORDS, "fill_s": round(fill_s, 1), "repeat": REPEAT, "pages": {}}
        for name, params in scenarios.items():
            results["pages"][name] = found = page_timings(client, url, params, REPEAT, row=b"<td title=")
            print(f"{name:>22}: p50 {found['p50_ms']:6.1f} ms  p95 {found['p95_ms']:6.1f} ms  "
                  f"{found['rows']} rows  queries {found['queries_50']} (50/page) {found['queries_200']} (200/page)",
                  flush=True)

        began = time.perf_counter()
        total = AuditRecord.objects.count()
        count_s = time.perf_counter() - began
        began = time.perf_counter()
        AuditRecord.objects.filter(target__icontains="on kvm3").count()
        filtered_count_s = time.perf_counter() - began
        print(f"COUNT(*) a numbered paginator would add to every page: {count_s * 1000:.0f} ms over {total:,}; "
              f"{filtered_count_s * 1000:.0f} ms for a text filter", flush=True)

        began = time.perf_counter()
        export = client.get(reverse("audit:export"), {"user": "user07"})
        exported = sum(chunk.count(b"\n") for chunk in export.streaming_content) - 1
        export_s = time.perf_counter() - began
        print(f"CSV export of one user's {exported:,} records: {export_s:.2f} s ({exported / export_s:,.0f} rows/s)")
        results.update({"count_ms": round(count_s * 1000, 1), "filtered_count_ms": round(filtered_count_s * 1000, 1),
                        "export_rows": exported, "export_s": round(export_s, 2)})
        connection.close()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "audit.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
