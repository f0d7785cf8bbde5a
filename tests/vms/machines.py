"""Test VMs on the real libvirtd: q35 machines under TCG (<domain type='qemu'>) that need no OS.

They are named with the test prefix and this run's pid, so the leftover sweeper of tests/conftest.py
removes what an interrupted run left; the helpers here destroy and undefine them when a test ends. A
running VM's qemu (user libvirt-qemu) must reach its disks' files: pytest's temp directories are closed
to it, so volumes for running VMs live in a pool of a directory it may enter (qemu_pool).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import TEST_POOL_PREFIX, ScratchPool, _cleanup_pool, virsh


def vm_name(tag: str = "vm") -> str:
    return f"{TEST_POOL_PREFIX}{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"


BUSY_ROOT_PORTS = 3  # libvirt puts the virtio-scsi and USB controllers and the memory balloon on root ports


def vm_xml(name: str, *, root_ports: int = BUSY_ROOT_PORTS + 3, disks: list[ET.Element] | None = None) -> str:
    """A q35 TCG VM of 64 MiB: hot-pluggable PCIe root ports (each free one takes one live virtio disk; libvirt
    adds ports when there are too few for the VM's own devices), a virtio-scsi controller, VNC on 127.0.0.1 only,
    and the given <disk> elements."""
    root = ET.Element("domain", type="qemu")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = "64"
    ET.SubElement(root, "vcpu").text = "1"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    devices = ET.SubElement(root, "devices")
    ET.SubElement(devices, "controller", type="pci", index="0", model="pcie-root")
    for index in range(1, root_ports + 1):
        ET.SubElement(devices, "controller", type="pci", index=str(index), model="pcie-root-port")
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for disk in disks or []:
        devices.append(disk)
    ET.SubElement(devices, "graphics", type="vnc", listen="127.0.0.1")
    return ET.tostring(root, encoding="unicode")


def disk(target: str, bus: str = "virtio", *, file: str = "", pool: str = "", volume: str = "", fmt: str = "raw",
         device: str = "disk", readonly: bool = False, shareable: bool = False, cache: str = "") -> ET.Element:
    """A <disk> by file path, by pool and volume name, or without a source (an empty CD-ROM drive)."""
    kind = "volume" if pool else "file"
    element = ET.Element("disk", type=kind, device=device)
    driver = ET.SubElement(element, "driver", name="qemu", type=fmt)
    if cache:
        driver.set("cache", cache)
    if pool:
        ET.SubElement(element, "source", pool=pool, volume=volume)
    elif file:
        ET.SubElement(element, "source", file=file)
    ET.SubElement(element, "target", dev=target, bus=bus)
    if readonly:
        ET.SubElement(element, "readonly")
    if shareable:
        ET.SubElement(element, "shareable")
    return element


class TestVM:
    """A VM of this test run, checked through virsh: the independent witness."""

    __test__ = False  # not a test class

    def __init__(self, name: str) -> None:
        self.name = name
        self.uuid = virsh("domuuid", name).strip()

    def start(self) -> TestVM:
        virsh("start", self.name)
        return self

    def xml(self, *, inactive: bool = False) -> ET.Element:
        return ET.fromstring(virsh("dumpxml", *(["--inactive"] if inactive else []), self.name))

    def disk(self, target: str, *, inactive: bool = False) -> ET.Element | None:
        for element in self.xml(inactive=inactive).findall("devices/disk"):
            if element.find("target").get("dev") == target:
                return element
        return None

    def blklist(self, *, inactive: bool = False) -> dict[str, str]:
        """virsh domblklist: target -> source (a volume's name, a path, or "-")."""
        out = virsh("domblklist", *(["--inactive"] if inactive else []), self.name)
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    def remove(self) -> None:
        virsh("destroy", self.name, check=False)
        virsh("undefine", self.name, check=False)


@contextmanager
def defined_vm(workdir: Path, tag: str = "vm", **kwargs) -> Iterator[TestVM]:
    """A defined (not started) VM, destroyed and undefined afterwards."""
    name = vm_name(tag)
    path = workdir / f"{name}.xml"
    path.write_text(vm_xml(name, **kwargs))
    virsh("define", str(path))
    vm = TestVM(name)
    try:
        yield vm
    finally:
        vm.remove()


@contextmanager
def qemu_pool() -> Iterator[ScratchPool]:
    """A throwaway dir pool in a directory that qemu may enter, for the disks of running VMs."""
    path = Path(tempfile.mkdtemp(prefix=f"{TEST_POOL_PREFIX}{os.getpid()}-", dir=tempfile.gettempdir()))
    path.chmod(0o755)
    name = f"{TEST_POOL_PREFIX}{os.getpid()}-qemu-{uuid.uuid4().hex[:8]}"
    virsh("pool-define-as", name, "dir", "--target", str(path))
    virsh("pool-start", name)
    try:
        yield ScratchPool(name, path)
    finally:
        _cleanup_pool(name)
        shutil.rmtree(path, ignore_errors=True)
