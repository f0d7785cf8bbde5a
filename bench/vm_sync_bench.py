"""Benchmark: the inventory sync of a host's VMs (500 defined VMs with 2,000 disks) vs virsh listing the same.

The app: ``sync_host(host, pool_names=[])`` (the host's facts and pool types, every VM with its disks, written to
the database: Domain rows updated in place, disks replaced). virsh, two ways: `virsh list --all` and then
`virsh domblklist` for each VM, one process each (what a script does); and the same commands in one virsh
process (one connection: virsh's floor). Runs alternate app, virsh, virsh-in-one; each figure is given as
min/median/max over the runs, and the ratios pair by pair.

Run with `make bench` or `.venv/bin/python -m bench.vm_sync_bench`. Needs libvirtd and root. Writes
bench/results/vm_sync.json. Not a test: nothing here asserts a speed. BENCH_VMS (500), BENCH_DISKS_PER_VM (4),
BENCH_REPEAT (5).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import URI, setup_django, virsh

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VMS = int(os.environ.get("BENCH_VMS", "500"))
DISKS_PER_VM = int(os.environ.get("BENCH_DISKS_PER_VM", "4"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def domain_xml(name: str, index: int) -> str:
    """A VM that is never started: half its disks by pool and volume name, half by path."""
    root = ET.Element("domain", type="qemu")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = "64"
    ET.SubElement(root, "vcpu").text = "1"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    devices = ET.SubElement(root, "devices")
    for n in range(DISKS_PER_VM):
        by_name = n % 2 == 0
        disk = ET.SubElement(devices, "disk", type="volume" if by_name else "file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2" if by_name else "raw")
        if by_name:
            ET.SubElement(disk, "source", pool="vsbench-images", volume=f"vm{index:04d}-disk{n}.qcow2")
        else:
            ET.SubElement(disk, "source", file=f"/var/lib/libvirt/images/vm{index:04d}-disk{n}.img")
        ET.SubElement(disk, "target", dev="vd" + chr(ord("a") + n), bus="virtio")
    return ET.tostring(root, encoding="unicode")


def virsh_per_process(names: list[str]) -> int:
    """`virsh list --all`, then `virsh domblklist` per VM, each its own process; the disks seen."""
    listed = virsh("list", "--all", "--name").split()
    return sum(len(virsh("domblklist", name).splitlines()) for name in names if name in listed)


def virsh_one_process(names: list[str]) -> int:
    """The same commands in one virsh process (one connection)."""
    script = "; ".join(["list --all --name", *(f"domblklist {name}" for name in names)])
    out = virsh(script)
    return sum(1 for line in out.splitlines() if line.startswith(" vd"))


def spread(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4), "max": round(max(values), 4)}


def main() -> dict:
    import libvirt

    workdir = Path(tempfile.mkdtemp(prefix="vs-bench-vms-", dir=ROOT / "var"))
    prefix = f"vsbench-vm-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i:04d}" for i in range(VMS)]
    conn = libvirt.open(URI)
    try:
        for index, name in enumerate(names):
            conn.defineXML(domain_xml(name, index))
        setup_django(workdir / "bench.sqlite3")
        from hosts.models import Domain, DomainDisk, Host
        from inventory.sync import sync_host

        host = Host.objects.create(name="bench", uri=URI)
        start = time.perf_counter()
        assert sync_host(host, pool_names=[]) is not None
        first_s = time.perf_counter() - start
        assert DomainDisk.objects.filter(domain__startswith=prefix).count() == VMS * DISKS_PER_VM
        times: dict[str, list[float]] = {"app": [], "virsh": [], "virsh_one": []}
        for _ in range(REPEAT):
            for kind, call in (("app", lambda: sync_host(host, pool_names=[])),
                               ("virsh", lambda: virsh_per_process(names)),
                               ("virsh_one", lambda: virsh_one_process(names))):
                start = time.perf_counter()
                found = call()
                times[kind].append(time.perf_counter() - start)
                if kind != "app":
                    assert found == VMS * DISKS_PER_VM, (kind, found)
        assert Domain.objects.filter(name__startswith=prefix).count() == VMS
        ratios = [a / v for a, v in zip(times["app"], times["virsh"], strict=True)]
        ratios_one = [a / v for a, v in zip(times["app"], times["virsh_one"], strict=True)]
        results = {
            "vms": VMS, "disks": VMS * DISKS_PER_VM, "runs": REPEAT, "first_sync_s": round(first_s, 3),
            "app_s": spread(times["app"]), "virsh_s": spread(times["virsh"]),
            "virsh_one_process_s": spread(times["virsh_one"]),
            "ratio_app_virsh": spread(ratios), "ratio_app_virsh_one_process": spread(ratios_one),
        }
        print(f"sync of {VMS} VMs with {VMS * DISKS_PER_VM} disks, {REPEAT} runs (min/median/max): "
              f"app {_fmt(times['app'])} s (first sync {first_s:.2f} s); "
              f"virsh list --all + domblklist per VM {_fmt(times['virsh'])} s; "
              f"the same in one virsh process {_fmt(times['virsh_one'])} s")
        print(f"ratio app/virsh {_fmt(ratios)}; app/virsh in one process {_fmt(ratios_one)}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "vm_sync.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        undefine_all(names)
        shutil.rmtree(workdir, ignore_errors=True)


def undefine_all(names: list[str], attempts: int = 5) -> None:
    """Undefine the benchmark's VMs on a fresh connection (libvirtd may have restarted meanwhile)."""
    import libvirt

    wanted = set(names)
    for _ in range(attempts):
        try:
            conn = libvirt.open(URI)
        except libvirt.libvirtError:
            time.sleep(3)
            continue
        for dom in conn.listAllDomains(0):
            if dom.name() in wanted:
                try:
                    dom.undefine()
                except libvirt.libvirtError:
                    pass
        conn.close()
        return
    print(f"could not undefine the benchmark's VMs ({names[0]}…): `virsh undefine` them")


def _fmt(values: list[float]) -> str:
    found = spread(values)
    return f"{found['min']:.3f}/{found['median']:.3f}/{found['max']:.3f}"


if __name__ == "__main__":
    subprocess.run(["virsh", "-q", "-c", URI, "version"], capture_output=True, check=True)  # fail early
    main()
