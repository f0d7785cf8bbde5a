"""Load test: 50 simulated users (locust, headless) against the whole app for 2 minutes (`make loadtest`).

Self-contained: a database of its own (a SQLite file; on PostgreSQL when DATABASE_URL names a server, in a
database of its own created there and dropped at the end), a real `dir` pool of 10,000 volumes on the local
libvirtd, a team with the pool granted, members, operators and admins; the app started as `make run` starts it
(the Procfile's web server with 2 granian workers, a Celery worker and the transfers worker) on 127.0.0.1;
then locust with bench/locustfile.py. Prints p50/p95/p99 per page, requests and errors, and the resident
memory of the web, worker and transfers processes after a warm-up and at the end; writes
bench/results/loadtest.json. Everything it started or made (processes, pool, files, database) is removed at
the end, also on failure. A benchmark, not a test: it asserts no speed, but exits 1 when locust saw errors.

LOADTEST_USERS (50), LOADTEST_SPAWN_RATE (10), LOADTEST_RUN_TIME (2m), LOADTEST_VOLUMES (10000),
LOADTEST_UPLOADS_PER_USER (2), LOADTEST_WARMUP_SECONDS (20) change the run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import (
    URI,
    children,
    cpu_seconds,
    drop_database,
    free_port,
    own_database,
    remove_pool,
    rss,
    setup_django,
    virsh,
)
from scripts.procfile import procfile_web_args

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
USERS = int(os.environ.get("LOADTEST_USERS", "50"))
SPAWN_RATE = os.environ.get("LOADTEST_SPAWN_RATE", "10")
RUN_TIME = os.environ.get("LOADTEST_RUN_TIME", "2m")
VOLUMES = int(os.environ.get("LOADTEST_VOLUMES", "10000"))
UPLOADS_PER_USER = int(os.environ.get("LOADTEST_UPLOADS_PER_USER", "2"))
WARMUP_SECONDS = float(os.environ.get("LOADTEST_WARMUP_SECONDS", "20"))
WEB_WORKERS = 2
ACCOUNTS = {"member": 50, "operator": 10, "admin": 10}
PAGE_TARGET_MS = 300  # the issue's target for pages' p95, shown beside the numbers (not asserted)


# -- What the run makes: pool, database, accounts ---------------------------------------------------------------

def make_pool(pool_dir: Path, name: str) -> None:
    """A started `dir` pool of VOLUMES sparse raw files (libvirt lists them after the start's scan)."""
    pool_dir.mkdir()
    for i in range(VOLUMES):
        with open(pool_dir / f"vol-{i:05d}.img", "wb") as f:
            f.truncate(1024**2 * (1 + i % 64))
    virsh("pool-define-as", name, "dir", "--target", str(pool_dir))
    virsh("pool-start", name)


def populate(pool_name: str, password: str) -> dict:
    """The local host and the pool in the inventory, a team granted the pool, accounts of each role; the
    locustfile's configuration."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from accounts.models import Membership, Team
    from accounts.roles import ADMIN, MEMBER, grant
    from accounts.teams import join
    from hosts.models import Host
    from inventory.sync import sync_host
    from pools.models import PoolGrant, StoragePool

    host = Host.objects.create(name="local", uri=URI)
    result = sync_host(host, pool_names=[pool_name])
    assert result is not None and result.volumes == VOLUMES, result
    pool = StoragePool.objects.get(host=host, name=pool_name)
    team = Team.objects.create(name="load-team")
    PoolGrant.objects.create(team=team, pool=pool)
    hashed = make_password(password)  # once: hashing is slow on purpose, and every account has the same one
    User = get_user_model()
    accounts: dict[str, list[str]] = {}
    for role, count in ACCOUNTS.items():
        accounts[role] = [f"load-{role}-{i:02d}" for i in range(count)]
        User.objects.bulk_create(User(username=name, password=hashed) for name in accounts[role])
        for user in User.objects.filter(username__in=accounts[role]):
            grant(user, ADMIN if role == "admin" else MEMBER)
            if role != "admin":
                join(user, team, Membership.Role.OPERATOR if role == "operator" else Membership.Role.MEMBER)
    volume_ids = list(pool.volumes.values_list("pk", flat=True))
    return {"pool": pool.pk, "team": team.pk, "volume_count": VOLUMES, "password": password,
            "volumes": secrets.SystemRandom().sample(volume_ids, min(1000, len(volume_ids))),
            "accounts": accounts, "uploads_per_user": UPLOADS_PER_USER, "sse_timeout": 90}


# -- The app's processes -------------------------------------------------------------------------------------

class Service:
    """One of the app's processes (and its children: granian's workers, Celery's pool), in a session of its own."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_app(env: dict[str, str], logs: Path, port: int, services: dict[str, Service]) -> None:
    """Web (the Procfile's command, 2 workers), the jobs worker and the transfers worker, as the Procfile's
    `worker:` and `transfers:` lines run them; each goes into services as it starts (the caller stops them)."""
    from jobs.runner import TRANSFER_QUEUE_SUFFIX

    queue = env["CELERY_QUEUE"]
    celery = [sys.executable, "-m", "celery", "-A", "virtstorage", "worker", "--loglevel=INFO"]
    services["web"] = Service("web", procfile_web_args("127.0.0.1", port) + ["--workers", str(WEB_WORKERS)],
                              env, logs)
    services["worker"] = Service("worker", celery + [f"--concurrency={env.get('WORKER_CONCURRENCY', '4')}",
                                                     f"--queues={queue}", f"--hostname={queue}@%h"], env, logs)
    services["transfers"] = Service(
        "transfers", celery + [f"--concurrency={env.get('TRANSFER_CONCURRENCY', '4')}",
                               f"--queues={queue}{TRANSFER_QUEUE_SUFFIX}", f"--hostname={queue}-transfers@%h"],
        env, logs)
    wait_ready(services, f"http://127.0.0.1:{port}")


def wait_ready(services: dict[str, Service], url: str, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    pending = set(services)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            services[name].alive()
            if name == "web":
                try:
                    urllib.request.urlopen(url + "/accounts/login/", timeout=2)
                    pending.discard(name)
                except OSError:
                    pass
            elif "ready." in services[name].tail(200):
                pending.discard(name)
        time.sleep(0.3)
    if pending:
        raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(sorted(pending))}")


def forget_queues(queue: str) -> None:
    """The run's Celery queues in Redis: jobs still queued when the workers stopped would stay there for good."""
    import redis
    from django.conf import settings

    from jobs.runner import TRANSFER_QUEUE_SUFFIX

    names = [queue, queue + TRANSFER_QUEUE_SUFFIX]
    redis.Redis.from_url(settings.REDIS_URL).delete(
        *names, *(f"_kombu.{kind}.{name}" for name in names for kind in ("binding", "binding_permanent")))


def memory(services: dict[str, Service]) -> dict[str, int]:
    """Resident memory of each service with its children, in MiB."""
    return {name: round(rss(service.pids()) / 1024**2) for name, service in services.items()}


# -- The run ---------------------------------------------------------------------------------------------------

def run_locust(env: dict[str, str], url: str, services: dict[str, Service], logs: Path) -> dict:
    """Locust, headless, for RUN_TIME; memory after the warm-up and at the end, and the CPU each party used
    from the warm-up to the end of the run (libvirtd, PostgreSQL's processes and locust itself too: they share the
    machine)."""
    args = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
            "-u", str(USERS), "-r", SPAWN_RATE, "--run-time", RUN_TIME, "--host", url, "--only-summary",
            "--stop-timeout", "30", "--loglevel", "WARNING"]
    began = time.monotonic()
    with open(logs / "locust.log", "ab") as out:
        locust = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    parties = {**{name: service.pids for name, service in services.items()}, "libvirtd": lambda: _named("libvirtd"),
               "locust": lambda: [locust.pid]}
    if env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        parties["postgres"] = lambda: _named("postgres")  # its backends serve the web's and workers' queries
    try:
        time.sleep(WARMUP_SECONDS)
        warm = memory(services)
        warm_cpu = {name: cpu_seconds(pids()) for name, pids in parties.items()}
        time.sleep(max(0.0, began + _seconds(RUN_TIME) - 1 - time.monotonic()))  # locust still runs
        cpu = {name: round(cpu_seconds(pids()) - warm_cpu[name], 1) for name, pids in parties.items()}
        locust.wait(120)
        for service in services.values():
            service.alive()
        end = memory(services)
    finally:
        if locust.poll() is None:
            os.killpg(locust.pid, signal.SIGTERM)
            locust.wait(30)
    return {"returncode": locust.returncode, "memory_warm_mib": warm, "memory_end_mib": end,
            "cpu_seconds_after_warmup": cpu}


def _named(program: str) -> list[int]:
    return [int(pid) for pid in subprocess.run(["pgrep", "-x", program], capture_output=True,
                                               text=True).stdout.split()]


def _seconds(run_time: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(run_time[:-1]) * units[run_time[-1]] if run_time[-1] in units else float(run_time)


def _cuts(ms: list[float]) -> list[float]:
    """The 99 percentile cut points of the times (all equal to the one time there is)."""
    if not ms:
        return [float("nan")] * 99
    return statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99


def percentiles(timings: dict[str, list[list[float]]], failures: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Per name: requests, errors, p50/p95/p99/max over the whole run, and p95 of the requests that ended after
    the warm-up (the 50 logins of the ramp-up hash passwords for seconds: the steady state is after them)."""
    table = {}
    for name in sorted(timings):
        ms = sorted(taken for _, taken in timings[name])
        steady = sorted(taken for at, taken in timings[name] if at >= WARMUP_SECONDS)
        cuts = _cuts(ms)
        table[name] = {"requests": len(ms), "errors": sum(failures.get(name, {}).values()),
                       "p50_ms": round(cuts[49], 1), "p95_ms": round(cuts[94], 1), "p99_ms": round(cuts[98], 1),
                       "max_ms": round(ms[-1], 1), "steady_p95_ms": round(_cuts(steady)[94], 1)}
    return table


def outcome_counts() -> dict:
    from jobs.models import Job
    from provisioning.models import ProvisioningRequest
    from volumes.models import Upload

    ended = Job.objects.filter(kind="upload", finished_at__isnull=False, started_at__isnull=False)
    waits = sorted((j.started_at - j.created_at).total_seconds() for j in ended)
    runs = sorted((j.finished_at - j.started_at).total_seconds() for j in ended)
    return {"upload_job_queue_wait_s": {"p50": round(statistics.median(waits), 1) if waits else None,
                                        "max": round(waits[-1], 1) if waits else None},
            "upload_job_run_s": {"p50": round(statistics.median(runs), 1) if runs else None,
                                 "max": round(runs[-1], 1) if runs else None},
            "uploads_done": Upload.objects.filter(state=Upload.State.DONE).count(),
            "uploads": Upload.objects.count(), "requests_filed": ProvisioningRequest.objects.count(),
            "jobs": {state: Job.objects.filter(state=state).count() for state in Job.State.values},
            "job_errors": list(Job.objects.filter(state=Job.State.FAILED).values_list("error", flat=True)[:5])}


def report(results: dict) -> None:
    print(f"\n{results['users']} users, {results['run_time']}, pool of {results['volumes']} volumes, "
          f"{results['database']}, {WEB_WORKERS} granian workers; load average at the end "
          f"{', '.join(f'{n:.1f}' for n in results['load_average_at_end'])} on {os.cpu_count()} CPUs")
    print(f"{'name':<30}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'p95 after warm-up':>19}")
    for name, row in results["table"].items():
        mark = " *" if name.startswith(("page:", "table:")) and row["p95_ms"] > PAGE_TARGET_MS else ""
        print(f"{name:<30}{row['requests']:>9}{row['errors']:>7}{row['p50_ms']:>9}{row['p95_ms']:>9}"
              f"{row['p99_ms']:>9}{row['max_ms']:>9}{row['steady_p95_ms']:>19}{mark}")
    print(f"(* a page over {PAGE_TARGET_MS} ms at p95; after warm-up: requests that ended {WARMUP_SECONDS:.0f} s "
          "or more after the start)")
    for name, messages in results["failures"].items():
        for message, count in messages.items():
            print(f"error x{count} {name}: {message}")
    warm, end = results["memory_warm_mib"], results["memory_end_mib"]
    for name in warm:
        print(f"memory {name}: {warm[name]} MiB after {WARMUP_SECONDS:.0f} s warm-up, {end[name]} MiB at the end "
              f"(x{end[name] / max(warm[name], 1):.2f})")
    print("CPU seconds from the warm-up to the end: "
          + ", ".join(f"{name} {seconds}" for name, seconds in results["cpu_seconds_after_warmup"].items()))
    print(f"outcomes: {json.dumps(results['counts'])}")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs on a kill too
    workdir = Path(tempfile.mkdtemp(prefix="vs-loadtest-", dir=ROOT / "var"))
    var, logs = workdir / "var", workdir / "logs"
    var.mkdir(mode=0o700)
    logs.mkdir()
    run_id = uuid.uuid4().hex[:8]
    pool_name = f"vsload-{run_id}"
    server_url = os.environ.get("DATABASE_URL", "")
    pg_name = f"vsload_{run_id}" if server_url.startswith(("postgres://", "postgresql://")) else ""
    services: dict[str, Service] = {}
    try:
        make_pool(workdir / pool_name, pool_name)
        url = own_database(server_url, pg_name) if pg_name else None
        os.environ.update(VIRTSTORAGE_VAR_DIR=str(var), CELERY_QUEUE=f"virtstorage-loadtest-{run_id}")
        setup_django(workdir / "loadtest.sqlite3", url)
        config = populate(pool_name, secrets.token_urlsafe(16))
        config_path = workdir / "locust-config.json"
        config_path.write_text(json.dumps(config))
        port = free_port()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="virtstorage.settings", PYTHONUNBUFFERED="1",
                   LOADTEST_CONFIG=str(config_path), LOADTEST_TIMINGS=str(workdir / "timings.json"))
        start_app(env, logs, port, services)
        run = run_locust(env, f"http://127.0.0.1:{port}", services, logs)
        collected = json.loads((workdir / "timings.json").read_text())
        results = {"users": USERS, "run_time": RUN_TIME, "volumes": VOLUMES, "load_average_at_end": os.getloadavg(),
                   "database": "PostgreSQL" if pg_name else "SQLite", "web_workers": WEB_WORKERS,
                   "table": percentiles(collected["timings"], collected["failures"]),
                   "failures": collected["failures"], **run, "counts": outcome_counts()}
        report(results)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "loadtest.json").write_text(json.dumps(results, indent=2) + "\n")
        errors = sum(row["errors"] for row in results["table"].values())
        if errors or run["returncode"]:
            print(f"locust saw {errors} errors (exit status {run['returncode']}); its log:\n"
                  + "\n".join((logs / "locust.log").read_text(errors="replace").splitlines()[-40:]))
            return 1
        return 0
    finally:
        for service in services.values():
            service.stop()
        if services:
            forget_queues(os.environ["CELERY_QUEUE"])
        remove_pool(pool_name)
        shutil.rmtree(workdir, ignore_errors=True)
        if pg_name:
            from django.db import connections

            connections.close_all()
            drop_database(server_url, pg_name)


if __name__ == "__main__":
    sys.exit(main())
