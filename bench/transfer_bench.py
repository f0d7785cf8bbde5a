"""Upload and download through the app vs virsh vol-upload / vol-download, on the same files.

Starts its own ASGI server and Celery worker on a throwaway database and var dir, and a
throwaway `dir` pool; prints time ratios app/virsh, disk sizes and peak memory (VmHWM) of the
web and worker processes, and writes bench/results/<case>.json.

Fair by construction: both sides use the same files in the same run, BENCH_REPEAT (5) runs each, virsh
and the app alternate (each case prints its best-of ratio and the median of the pairwise ratios), and dirty
pages are written back (sync) before each timed run so no run pays for another's writeback.
BENCH_CASES=dense or =sparse runs one case.

Every case runs both ways the app moves bytes for a host that is this machine: direct file I/O
(Host.direct_io, the default; cases upload_dense...) and libvirt's streams (what a remote host gets;
cases upload_dense_libvirt...). BENCH_IO=direct or =libvirt runs one.

With BENCH_LIBVIRT_URI naming a remote URI of this machine's libvirtd (qemu+tcp://127.0.0.1/system with
libvirtd listening; virsh uses the same URI), the cases are the remote path's: libvirt's streams over that
URI (cases ..._libvirt) and a worker beside the host (cases ..._beside: the host names a queue, whose worker
has LIBVIRT_HOSTS_HERE set to the URI, so uploads and downloads are relayed to and from it through Redis and
it reads and writes the files in place). BENCH_IO=libvirt or =beside runs one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, URI, disk_size, median_ratio, remove_pool, virsh
from bench.transfer_app import App
from bench.transfer_floor import REPEAT, RESULTS, GiB, MiB, http_floor, print_receive, receive_path
from scripts import vstransfer
from virtstorage.virt import localfile


def make_files(base: Path, kinds: list[str]) -> dict[str, Path]:
    files = {}
    if "dense" in kinds:
        files["dense"] = base / "dense-1g.img"
        with open(files["dense"], "wb") as f:
            for _ in range(1024):
                f.write(os.urandom(MiB))
    if "sparse" in kinds:
        files["sparse"] = base / "sparse-8g.img"
        with open(files["sparse"], "wb") as f:
            f.truncate(8 * GiB)
            for i in range(32):  # 32 extents of 8 MiB = 256 MiB of data spread over 8 GiB
                f.seek(i * 256 * MiB + 3 * MiB)
                f.write(os.urandom(8 * MiB))
    return files


def run_cases(app: App, pool_name: str, pool_path: Path, files: dict[str, Path]) -> list[dict]:
    import django
    django.setup()
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Team
    from accounts.roles import grant
    from accounts.teams import join
    from hosts.models import Host
    from inventory.sync import sync_host
    from pools.models import PoolGrant, StoragePool
    from volumes.models import Volume

    password = secrets.token_hex(16)
    user = get_user_model().objects.create_user("bench", password=password)
    grant(user, "member")
    host = Host.objects.create(name="bench", uri=URI)
    sync_host(host, pool_names=[pool_name])
    pool = StoragePool.objects.get(host=host, name=pool_name)
    # A member moves the bytes, as users do: through a team granted the pool.
    team = Team.objects.create(name="bench-team")
    PoolGrant.objects.create(team=team, pool=pool)
    join(user, team, Membership.Role.MEMBER)
    session = vstransfer.Session(app.url)
    deadline = time.monotonic() + 60
    while True:
        try:
            session.login("bench", password)
            break
        except OSError:
            session.reset()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)

    def app_upload(path: Path, name: str) -> dict[str, float]:
        """The command-line client's upload, to the job's end; and when its last chunk was sent."""
        job = vstransfer.upload(session, str(path), pool.pk, name, quiet=True)
        return {"sent_s": job["sent_seconds"]}

    def app_download(name: str, target: Path, sparse: bool) -> None:
        volume = Volume.objects.get(pool=pool, name=name)
        vstransfer.download(session, volume.pk, str(target), sparse=sparse, quiet=True)

    results = []
    scratch = pool_path.parent / "downloads"
    scratch.mkdir(exist_ok=True)
    for io_path in io_paths():
        # direct, libvirt: the app's two ways of moving bytes for a host that is this machine (Host.direct_io);
        # beside: a remote host whose own worker (its queue) reaches it through this machine's libvirtd.
        Host.objects.filter(pk=host.pk).update(direct_io=io_path != "libvirt",
                                               queue=app.beside_queue if io_path == "beside" else "")
        results += _run_io_path(app, pool_name, pool_path, files, scratch, app_upload, app_download,
                                "" if io_path == "direct" else f"_{io_path}")
    return results


def io_paths() -> list[str]:
    """BENCH_IO, else every way the app moves bytes for this URI: for a remote one (BENCH_LIBVIRT_URI), libvirt's
    streams over it, and a worker beside the host with the transfers relayed to and from it."""
    default = "direct,libvirt" if localfile.is_local_uri(URI) else "libvirt,beside"
    return os.environ.get("BENCH_IO", default).split(",")


def _run_io_path(app: App, pool_name: str, pool_path: Path, files: dict[str, Path], scratch: Path,
                 app_upload, app_download, suffix: str) -> list[dict]:
    def best(runs: list[float]) -> float:
        return min(runs)

    results = []
    for kind, path in files.items():
        sparse = kind == "sparse"
        size = path.stat().st_size
        flags = ["--sparse"] if sparse else []
        virsh_name, app_name = f"virsh-{kind}{suffix}.img", f"app-{kind}{suffix}.img"

        # Uploads: virsh and the app alternate, each into a fresh volume, best of REPEAT; dirty pages
        # of the previous run are written back first so no run pays for another's writeback.
        virsh_runs, app_runs, phases, virsh_cpu, app_cpu = [], [], [], [], []
        app.reset_peaks()
        for attempt in range(REPEAT):
            last = attempt == REPEAT - 1
            name = virsh_name if last else f"virsh-{kind}{suffix}-{attempt}.img"
            virsh("vol-create-as", pool_name, name, str(size), "--allocation", "0", "--format", "raw")
            os.sync()
            seconds, cpu, _ = app.measured(virsh, "vol-upload", "--pool", pool_name, name, str(path), *flags)
            virsh_runs.append(seconds)
            virsh_cpu.append(cpu)
            os.sync()
            seconds, cpu, phase = app.measured(app_upload, path,
                                               app_name if last else f"app-{kind}{suffix}-{attempt}.img")
            app_runs.append(seconds)
            app_cpu.append(cpu)
            phases.append(phase)
            if not last:
                virsh("vol-delete", "--pool", pool_name, name)
                virsh("vol-delete", "--pool", pool_name, f"app-{kind}{suffix}-{attempt}.img")
        fastest = app_runs.index(best(app_runs))
        results.append({
            "case": f"upload_{kind}{suffix}", "file_bytes": size, "app_s": best(app_runs), "virsh_s": best(virsh_runs),
            "ratio": best(app_runs) / best(virsh_runs), "median_ratio": median_ratio(app_runs, virsh_runs),
            "app_runs_s": app_runs, "virsh_runs_s": virsh_runs,
            "app_sent_s": phases[fastest]["sent_s"],
            "app_cpu_s": app_cpu[fastest], "virsh_cpu_s": virsh_cpu[virsh_runs.index(best(virsh_runs))],
            "disk_size_bytes": disk_size(pool_path / app_name),
            "virsh_disk_size_bytes": disk_size(pool_path / virsh_name), **app.peaks(),
        })

        # Downloads of the volumes just uploaded (both warm in the page cache), best of REPEAT.
        virsh_target, app_target = scratch / f"virsh-{kind}.out", scratch / f"app-{kind}.out"
        virsh_runs, app_runs, virsh_cpu, app_cpu = [], [], [], []
        app.reset_peaks()
        for _ in range(REPEAT):
            os.sync()
            seconds, cpu, _ = app.measured(virsh, "vol-download", "--pool", pool_name, virsh_name,
                                           str(virsh_target), *flags)
            virsh_runs.append(seconds)
            virsh_cpu.append(cpu)
            os.sync()
            seconds, cpu, _ = app.measured(app_download, app_name, app_target, sparse)
            app_runs.append(seconds)
            app_cpu.append(cpu)
            if os.path.getsize(app_target) != size:
                raise RuntimeError(f"download of {kind} has {os.path.getsize(app_target)} bytes, not {size}")
        row = {
            "case": f"download_{kind}{suffix}", "file_bytes": size,
            "app_s": best(app_runs), "virsh_s": best(virsh_runs),
            "ratio": best(app_runs) / best(virsh_runs), "median_ratio": median_ratio(app_runs, virsh_runs),
            "app_runs_s": app_runs, "virsh_runs_s": virsh_runs,
            "app_cpu_s": app_cpu[app_runs.index(best(app_runs))],
            "virsh_cpu_s": virsh_cpu[virsh_runs.index(best(virsh_runs))],
            "disk_size_bytes": disk_size(app_target), "virsh_disk_size_bytes": disk_size(virsh_target),
            **app.peaks(),
        }
        results.append(row)
        virsh_target.unlink()
        app_target.unlink()
    return results


def _cpu_text(cpu: dict[str, float]) -> str:
    return f"{sum(cpu.values()):.2f} (" + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + ")"


def main() -> list[dict]:
    base = Path(tempfile.mkdtemp(prefix="virtstorage-bench-"))
    pool_name = f"transferbench-{secrets.token_hex(4)}"
    pool_path = base / "pool"
    pool_path.mkdir()
    virsh("pool-create-as", pool_name, "dir", "--target", str(pool_path))
    app = App(base, beside_uri=None if localfile.is_local_uri(URI) else URI)
    try:
        wanted = os.environ.get("BENCH_CASES", "dense,sparse").split(",")
        files = make_files(base, wanted)
        results = run_cases(app, pool_name, pool_path, files)
        receive = receive_path(app, pool_name, files["dense"]) if "dense" in files else None
        floor = http_floor(files["dense"]) if "dense" in files else {"up_s": 0.0, "down_s": 0.0}
    finally:
        app.stop()
        listing = subprocess.run(["virsh", "-q", "-c", URI, "vol-list", pool_name], capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            if line.split():
                subprocess.run(["virsh", "-c", URI, "vol-delete", "--pool", pool_name, line.split()[0]],
                               capture_output=True)
        remove_pool(pool_name)
        shutil.rmtree(base, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "http_floor.json").write_text(json.dumps(floor, indent=2) + "\n")
    print(f"best of {REPEAT} runs each, and the median of the {REPEAT} pairwise ratios app/virsh; the source files "
          "and volumes are warm in the page cache for both sides")
    print(f"{'case':26} {'app s':>8} {'virsh s':>8} {'ratio':>6} {'median':>6} {'app disk':>10} {'virsh disk':>10} "
          f"{'web peak':>9} {'worker peak':>11}")
    for row in results:
        (RESULTS / f"{row['case']}.json").write_text(json.dumps(row, indent=2) + "\n")
        print(f"{row['case']:26} {row['app_s']:8.2f} {row['virsh_s']:8.2f} {row['ratio']:6.2f} "
              f"{row['median_ratio']:6.2f} "
              f"{row['disk_size_bytes'] / MiB:8.0f}Mi {row['virsh_disk_size_bytes'] / MiB:8.0f}Mi "
              f"{row['web_peak_rss_bytes'] / MiB:7.0f}Mi {row['worker_peak_rss_bytes'] / MiB:9.0f}Mi")
        if row["case"] == "upload_dense_libvirt":
            print(f"{'':26} (floor: a bare ASGI app on the same server, no Django/disk/libvirt, receives 1 GiB in "
                  f"{floor['up_s']:.2f} s)")
        if row["case"] == "download_dense_libvirt":
            print(f"{'':26} (floor: a bare ASGI app on the same server streams 1 GiB from memory to this client in "
                  f"{floor['down_s']:.2f} s)")
        print(f"{'':26} CPU seconds: app {_cpu_text(row['app_cpu_s'])}; virsh {_cpu_text(row['virsh_cpu_s'])}")
        if "app_sent_s" in row:
            print(f"{'':26} (the client sent its last chunk after {row['app_sent_s']:.2f} s; the job writes the "
                  "volume while chunks arrive)")
    if receive is not None:
        print_receive(receive, floor)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
