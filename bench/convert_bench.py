"""Convert through the app vs `qemu-img convert` alone: a 1 GiB raw volume holding 256 MiB of data, to qcow2.

Run with `make bench` (all benchmarks) or `.venv/bin/python -m bench.convert_bench`. Needs libvirtd and root.
The app runs as a user runs it: its ASGI server and Celery worker (bench/transfer_bench.py's App) on a
throwaway database, a member logged in over HTTP posts the volume page's Convert form and follows the job
as its page does (its server-sent events) until it has ended, where the app's time stops (the job's state is
asked after it); the new volume is then in the inventory. The other side is
`qemu-img convert -f raw -O qcow2` on the same source file into the same pool directory.

Fair by construction: the same files in the same run, the app and qemu-img alternating, dirty pages written
back (sync) and, with BENCH_CACHE=cold (the default), the page cache dropped before each timed run (=source:
only the source file's pages),
BENCH_REPEAT (5) runs each; prints min/median/max of each side and of the
ratio app/qemu-img pair by pair (the machine's speed drifts together for a pair), where the app's time went
(the POST's answer and when in it the job row was made, the job row to the job's start, the job, its end to the
client seeing it), and checks the copies with `qemu-img compare`. Writes bench/results/convert.json. Not a test:
nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench.common import URI, disk_size, remove_pool, virsh

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MiB = 1024 * 1024
GiB = 1024 * MiB
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def make_source(path: Path) -> None:
    """1 GiB, 256 MiB of data: 32 extents of 8 MiB spread over it, holes between them."""
    with open(path, "r+b") as f:
        for i in range(32):
            f.seek(i * 32 * MiB + 3 * MiB)
            f.write(os.urandom(8 * MiB))


class Client:
    """The member's browser, as plain HTTP: logged in, posting a form with the CSRF token, following a job."""

    def __init__(self, url: str, user: str, password: str) -> None:
        from scripts import vstransfer

        self.session = vstransfer.Session(url)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.session.login(user, password)
                return
            except OSError:
                self.session.reset()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def follow(self, job_id: int) -> None:
        """Watch the job as its page does, through its server-sent events, until the "end" event."""
        from scripts import vstransfer

        events = vstransfer.Session(f"http://{self.session.netloc}")
        events.cookies = dict(self.session.cookies)
        response = events.request("GET", f"/jobs/{job_id}/events/", headers={"Accept": "text/event-stream"})
        try:
            while (line := response.readline()) and line.strip() != b"event: end":
                pass
        finally:
            events.reset()

    def convert(self, volume_pk: int, pool_pk: int, name: str) -> tuple[int, dict[str, float]]:
        """Post the form and follow the job to its end, as the member waits for it: the job's id, and when
        (time.time()) the client posted, had the answer and saw the end."""
        posted = time.time()
        form = urllib.parse.urlencode({"name": name, "target_pool": pool_pk, "format": "qcow2", "provisioning": "off",
                                       "csrfmiddlewaretoken": self.session.cookies["csrftoken"]}).encode()
        response = self.session.request("POST", f"/volumes/{volume_pk}/convert/", form,
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        body = response.read()
        match = re.fullmatch(r".*/jobs/(\d+)/", response.headers.get("Location") or "")
        if response.status != 302 or match is None:
            raise RuntimeError(f"the convert form answered {response.status}: {body[-2000:]!r}")
        answered = time.time()
        self.follow(int(match[1]))
        return int(match[1]), {"posted": posted, "answered": answered, "ended": time.time()}

    def succeeded(self, job_id: int) -> dict:
        """The job's snapshot, once it has ended (asked after the timing: the member's wait ends with the event)."""
        job = self.session.json("GET", f"/jobs/{job_id}/")
        if job["state"] != "succeeded":
            raise RuntimeError(f"job {job_id} {job['state']}: {job['error']}")
        return job


def qemu_img_alone(source: Path, target: Path) -> None:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(source), str(target)], check=True)


# BENCH_CACHE says what is cold before each timed run (dirty pages are written back first):
# - cold (the default): the whole page cache is dropped, so both sides read the source from disk, as a real
#   convert of an image not just written does; the app's database file and qemu-img's binary are cold too;
# - source: only the source file's pages are evicted (posix_fadvise), the case of a running service: its
#   database and the tools it runs are in memory, the image it converts is not;
# - warm: nothing is evicted (qemu-img then reads 256 MiB from memory in ~0.15 s and the app's fixed cost of
#   queue, checks and sync dominates the ratio).
CACHE = os.environ.get("BENCH_CACHE", "cold")
if CACHE not in ("cold", "source", "warm"):
    raise SystemExit(f"BENCH_CACHE={CACHE}: cold, source or warm")


def _drop_page_cache() -> None:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as knob:
            knob.write("3\n")
    except OSError as exc:
        raise SystemExit(f"BENCH_CACHE=cold needs root to drop the page cache ({exc}); "
                         "or set BENCH_CACHE=source or warm") from exc


def _evict(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def timed(source: Path, call, *args):
    os.sync()
    if CACHE == "cold":
        _drop_page_cache()
    elif CACHE == "source":
        _evict(source)
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(app, pool_name: str, pool_path: Path) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from accounts.roles import MEMBER, grant
    from accounts.teams import join
    from hosts.models import Host
    from inventory.sync import sync_host
    from jobs.models import Job
    from pools.models import StoragePool
    from volumes.models import Volume

    password = secrets.token_hex(16)
    user = get_user_model().objects.create_user("bench", password=password)
    grant(user, MEMBER)
    join(user, role="member")  # the default team, which may use every pool
    host = Host.objects.create(name="bench", uri=URI)
    sync_host(host, pool_names=[pool_name])
    pool = StoragePool.objects.get(host=host, name=pool_name)
    source = Volume.objects.get(pool=pool, name="source.raw")
    client = Client(app.url, "bench", password)
    client.succeeded(client.convert(source.pk, pool.pk, "warm-up.qcow2")[0])  # the worker's imports, first connection

    app_s, alone_s, ratios, phases = [], [], [], []
    for attempt in range(REPEAT):
        name = f"app-{attempt}.qcow2"
        alone = pool_path / f"alone-{attempt}.qcow2"
        seconds, _ = timed(pool_path / "source.raw", qemu_img_alone, pool_path / "source.raw", alone)
        alone_s.append(seconds)
        seconds, (job_id, seen) = timed(pool_path / "source.raw", client.convert, source.pk, pool.pk, name)
        client.succeeded(job_id)
        app_s.append(seconds)
        ratios.append(app_s[-1] / alone_s[-1])
        job = Job.objects.get(pk=job_id)
        phases.append({"post_s": seen["answered"] - seen["posted"],
                       "post_to_row_s": job.created_at.timestamp() - seen["posted"],
                       "queued_s": (job.started_at - job.created_at).total_seconds(),
                       "job_s": (job.finished_at - job.started_at).total_seconds(),
                       "end_seen_s": seen["ended"] - job.finished_at.timestamp()})
        if attempt == 0:
            compare = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(pool_path / "source.raw"),
                                      str(pool_path / name)], capture_output=True, text=True)
            if compare.returncode != 0:
                raise RuntimeError(f"the app's copy differs from its source: {compare.stdout}{compare.stderr}")
            sizes = {"app_disk_size_bytes": disk_size(pool_path / name), "alone_disk_size_bytes": disk_size(alone)}
            if not Volume.objects.filter(pool=pool, name=name, format="qcow2").exists():
                raise RuntimeError(f"{name} is not in the inventory after its job")
        virsh("vol-delete", "--pool", pool_name, name)
        alone.unlink()
    return {"case": "convert_raw_1g_256m_to_qcow2", "cache": CACHE, "runs": REPEAT, "app_s": spread(app_s),
            "qemu_img_s": spread(alone_s), "ratio": spread(ratios), "app_runs_s": app_s, "qemu_img_runs_s": alone_s,
            "ratios": ratios, "app_phases": phases, **sizes}


def main() -> dict:
    from bench.transfer_bench import App

    base = Path(tempfile.mkdtemp(prefix="virtstorage-bench-"))
    pool_name = f"convertbench-{secrets.token_hex(4)}"
    pool_path = base / "pool"
    pool_path.mkdir()
    virsh("pool-create-as", pool_name, "dir", "--target", str(pool_path))
    app = None
    try:
        virsh("vol-create-as", pool_name, "source.raw", str(GiB), "--allocation", "0", "--format", "raw")
        make_source(pool_path / "source.raw")
        app = App(base)
        result = run(app, pool_name, pool_path)
    finally:
        if app is not None:
            app.stop()
        remove_pool(pool_name)
        shutil.rmtree(base, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "convert.json").write_text(json.dumps(result, indent=2) + "\n")

    def row(label: str, values: dict, unit: str = "s") -> str:
        return f"{label:34} {values['min']:7.3f} {values['median']:7.3f} {values['max']:7.3f} {unit}"

    print(f"convert of a 1 GiB raw volume holding 256 MiB of data to qcow2, {REPEAT} runs each, alternating, "
          f"BENCH_CACHE={CACHE}")
    print(f"{'':34} {'min':>7} {'median':>7} {'max':>7}")
    print(row("app (form POST to the job's end)", result["app_s"]))
    print(row("qemu-img convert alone", result["qemu_img_s"]))
    print(row("ratio app / qemu-img (pairwise)", result["ratio"], "×"))
    for key, label in (("post_s", "  of which: the POST's answer"), ("post_to_row_s", "    (its job row made after)"),
                       ("queued_s", "  of which: job row to its start"),
                       ("job_s", "  of which: the job itself"), ("end_seen_s", "  of which: its end to the client")):
        print(row(label, spread([p[key] for p in result["app_phases"]])))
    print(f"disk size: app {result['app_disk_size_bytes'] / MiB:.0f} MiB, "
          f"qemu-img {result['alone_disk_size_bytes'] / MiB:.0f} MiB")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
