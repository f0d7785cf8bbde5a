"""Pages on PostgreSQL with the web's connection pool (DB_POOL_MAX_SIZE, the default) and without it (=0: a
connect per request, as before): the same pages, the same database, the two servers asked in turn.

Run with `make bench` (it passes the test server as BENCH_POSTGRES_URL) or
`BENCH_POSTGRES_URL=postgres://… .venv/bin/python -m bench.db_pool_bench`. Two granian servers started from the
Procfile's web line on one database of the benchmark's own (dropped after); an admin logged in over HTTP asks
each page BENCH_REQUESTS (200) times of each server, alternating request by request, and the benchmark prints
p50/p95 per page and server and the ratio pooled/unpooled. No libvirt here: the pages read the inventory only.
Writes bench/results/db_pool.json. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, drop_database, free_port, own_database, setup_django

RESULTS = ROOT / "bench" / "results"
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
PAGES = ["/", "/jobs/", "/requests/", "/audit/"]
MODES = {"pooled": "16", "unpooled": "0"}  # DB_POOL_MAX_SIZE


def serve(url: str, pool_size: str, var: Path, log) -> tuple[subprocess.Popen, str]:
    from scripts.procfile import procfile_web_args

    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, DB_POOL_MAX_SIZE=pool_size, VIRTSTORAGE_VAR_DIR=str(var),
               DJANGO_SETTINGS_MODULE="virtstorage.settings", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(procfile_web_args("127.0.0.1", port), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def logged_in(url: str, user: str, password: str):
    from scripts import vstransfer

    session = vstransfer.Session(url)
    deadline = time.monotonic() + 60
    while True:
        try:
            session.login(user, password)
            return session
        except OSError:
            session.reset()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def main() -> dict:
    server = os.environ.get("BENCH_POSTGRES_URL") or ""
    if not server.startswith("postgres"):
        raise SystemExit("db_pool_bench needs PostgreSQL: set BENCH_POSTGRES_URL=postgres://user:password@host/db "
                         "(make bench passes the test server's)")
    name = f"vsbench_pool_{os.getpid()}"
    url = own_database(server, name)
    base = Path(tempfile.mkdtemp(prefix="virtstorage-bench-"))
    procs = []
    try:
        setup_django(base / "unused.sqlite3", url)
        from django.contrib.auth import get_user_model

        password = secrets.token_hex(16)
        get_user_model().objects.create_superuser("bench", password=password)
        with open(base / "servers.log", "ab") as log:
            sessions = {}
            for mode, size in MODES.items():
                (base / mode).mkdir()
                proc, address = serve(url, size, base / mode, log)
                procs.append(proc)
                sessions[mode] = logged_in(address, "bench", password)
        for session in sessions.values():  # warm-up: imports, templates, the pool's first connection
            for page in PAGES:
                session.request("GET", page).read()
        times = {mode: {page: [] for page in PAGES} for mode in MODES}
        for page in PAGES:
            for _ in range(REQUESTS):
                for mode, session in sessions.items():
                    began = time.perf_counter()
                    response = session.request("GET", page)
                    response.read()
                    times[mode][page].append(time.perf_counter() - began)
                    if response.status != 200:
                        raise RuntimeError(f"{mode} {page} answered {response.status}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait(20)
        drop_database(server, name)
        shutil.rmtree(base, ignore_errors=True)

    def spread(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
                "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2)}

    result = {"case": "pages_on_postgresql_pool_vs_connect", "requests": REQUESTS,
              "pages": {page: {mode: spread(times[mode][page]) for mode in MODES} for page in PAGES}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "db_pool.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"pages on PostgreSQL, {REQUESTS} requests each, pooled (DB_POOL_MAX_SIZE=16) and unpooled (=0) in turn")
    print(f"{'page':10} {'pooled p50':>11} {'p95':>7} {'unpooled p50':>13} {'p95':>7} {'ratio p50':>10} {'p95':>6}")
    for page, row in result["pages"].items():
        pooled, unpooled = row["pooled"], row["unpooled"]
        print(f"{page:10} {pooled['p50_ms']:11.1f} {pooled['p95_ms']:7.1f} {unpooled['p50_ms']:13.1f} "
              f"{unpooled['p95_ms']:7.1f} {pooled['p50_ms'] / unpooled['p50_ms']:9.2f}× "
              f"{pooled['p95_ms'] / unpooled['p95_ms']:5.2f}×")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
