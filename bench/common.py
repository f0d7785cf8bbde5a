"""What the benchmarks share: Django on a database of their own, virsh on the benchmark's libvirt URI, what a
process cost (CPU, memory) and how long a page takes."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
URI = os.environ.get("BENCH_LIBVIRT_URI", "qemu:///system")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_django(db_path: Path, url: str | None = None) -> None:
    """Django on a database of the benchmark's own (a SQLite file, or the database at url), migrated."""
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = url or f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtstorage.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def own_database(server_url: str, name: str) -> str:
    """A new database on the PostgreSQL server of server_url; its URL."""
    import psycopg

    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def remove_pool(name: str) -> None:
    """Stop and forget a benchmark's pool (its directory is the caller's to remove); quiet if it is gone."""
    for step in ("pool-destroy", "pool-undefine"):
        subprocess.run(["virsh", "-q", "-c", URI, step, name], capture_output=True)


def virsh(*args: str) -> str:
    proc = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def timed(call, *args) -> float:
    start = time.perf_counter()
    call(*args)
    return time.perf_counter() - start


def median_ratio(runs: list[float], others: list[float]) -> float:
    """The median of the pairwise ratios runs[i] / others[i] (the two sides alternate: a pair shares the
    machine's speed of the moment)."""
    return statistics.median(a / b for a, b in zip(runs, others, strict=True))


def disk_size(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def peak_rss(pids: list[int]) -> int:
    """Largest VmHWM (peak resident memory) among the processes, in bytes."""
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
    return peak


def rss(pids: list[int]) -> int:
    """Resident memory (VmRSS) of the processes now, summed, in bytes; a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, with that of their reaped children) the processes have used."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def page_timings(client, url: str, params: dict, repeat: int, *, row: bytes) -> dict:
    """GET url with params `repeat` times through Django's test client: p50/p95 in ms, the rows on the page
    (occurrences of `row`), and the queries one page costs at 50 and at 200 rows a page (?per_page=)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    spent = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url, params)
        spent.append(time.perf_counter() - began)
        assert response.status_code == 200, response.status_code
    queries = {}
    for size in (50, 200):
        with CaptureQueriesContext(connection) as captured:
            client.get(url, {**params, "per_page": size})
        queries[size] = len(captured)
    spent.sort()
    return {"p50_ms": round(statistics.median(spent) * 1000, 1),
            "p95_ms": round(spent[int(len(spent) * 0.95) - 1] * 1000, 1),
            "rows": response.content.count(row), "queries_50": queries[50], "queries_200": queries[200]}
