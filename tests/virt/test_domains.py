"""The libvirt layer's VMs: parsing and building disk XML (pure), then listing, attaching and detaching on the real
libvirtd with q35 TCG VMs, stopped and running, checked with virsh domblklist and the domain XML."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.conftest import LIBVIRT_URI, ScratchPool
from tests.vms.machines import BUSY_ROOT_PORTS, TestVM, defined_vm, disk, qemu_pool
from virtstorage.virt import InvalidRequest, LibvirtHost, ObjectNotFound, open_host
from virtstorage.virt import domains as vd

DOMAIN_XML = """<domain type='qemu'><name>web1</name><uuid>0b6f3a52-1111-4000-8000-000000000001</uuid>
  <memory unit='GiB'>2</memory><currentMemory unit='MiB'>1536</currentMemory><vcpu current='2'>4</vcpu>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/libvirt/images/web1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='volume' device='disk'><driver name='qemu' type='raw'/>
      <source pool='data' volume='shared.img'/><target dev='sdb' bus='scsi'/><shareable/></disk>
    <disk type='block' device='disk'><source dev='/dev/vg0/lv1'/><target dev='vdc' bus='virtio'/><readonly/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='rbdpool/img'/>
      <target dev='vdd' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='sata'/><readonly/></disk>
  </devices></domain>"""


# -- Pure: XML in and out, names, the sharing rule -------------------------------------------------

def test_parse_domain_reads_every_kind_of_disk():
    info = vd.parse_domain(DOMAIN_XML, state="running", persistent=True)
    assert (info.name, info.uuid, info.vcpus, info.memory_kib) == ("web1", "0b6f3a52-1111-4000-8000-000000000001",
                                                                   2, 1536 * 1024)
    assert info.active
    by_target = {d.target: d for d in info.disks}
    assert list(by_target) == ["vda", "sdb", "vdc", "vdd", "sda"]
    assert by_target["vda"] == vd.DiskInfo("vda", "virtio", "disk", "file", "/var/lib/libvirt/images/web1.qcow2",
                                           cache="none", format="qcow2")
    assert (by_target["sdb"].pool, by_target["sdb"].volume, by_target["sdb"].shareable) == ("data", "shared.img", True)
    assert (by_target["vdc"].source_type, by_target["vdc"].path, by_target["vdc"].readonly) == (
        "block", "/dev/vg0/lv1", True)
    assert (by_target["vdd"].source_type, by_target["vdd"].path) == ("network", "rbdpool/img")
    assert (by_target["sda"].device, by_target["sda"].path, by_target["sda"].bus) == ("cdrom", "", "sata")
    assert vd.parse_domain(DOMAIN_XML.replace("<currentMemory unit='MiB'>1536</currentMemory>", ""),
                           state="shut off", persistent=False).memory_kib == 2 * 1024 * 1024
    assert not vd.parse_domain(DOMAIN_XML, state="shut off", persistent=True).active


def test_a_disk_is_a_volume_by_name_or_by_path():
    info = vd.parse_domain(DOMAIN_XML, state="running", persistent=True)
    uses = vd.volume_uses([info], "data", "shared.img", "/srv/data/shared.img")
    assert [(name, d.target) for name, d in uses] == [("web1", "sdb")]
    uses = vd.volume_uses([info], "images", "web1.qcow2", "/var/lib/libvirt/images/web1.qcow2")
    assert [(name, d.target) for name, d in uses] == [("web1", "vda")]
    assert vd.volume_uses([info], "images", "other.img", "") == []  # an empty path matches no empty CD-ROM


@pytest.mark.parametrize(("index", "name"), [(0, "vda"), (25, "vdz"), (26, "vdaa"), (27, "vdab"), (51, "vdaz"),
                                             (52, "vdba"), (701, "vdzz")])
def test_target_names_follow_libvirt(index, name):
    assert vd.target_name("vd", index) == name


def test_free_target_per_bus():
    assert vd.free_target(["vda", "vdb", "sda"], "virtio") == "vdc"
    assert vd.free_target(["vda", "sda"], "scsi") == "sdb"
    assert vd.free_target(["sda", "sdb"], "sata") == "sdc"  # scsi and sata share the sd names
    assert vd.free_target([vd.target_name("vd", i) for i in range(26)], "virtio") == "vdaa"
    with pytest.raises(InvalidRequest, match="no free virtio"):
        vd.free_target([vd.target_name("vd", i) for i in range(vd.MAX_TARGETS)], "virtio")
    with pytest.raises(InvalidRequest, match="Unknown disk bus"):
        vd.free_target([], "floppy-ish")


@pytest.mark.parametrize("name", ["a<b>&c\"d'.img", "$(id).img", "x\ny.img"])
def test_disk_xml_names_the_volume_by_pool_and_name(name):
    spec = vd.DiskSpec(pool="p<1>", volume=name, format="qcow2", bus="scsi", readonly=True, shareable=True,
                       cache="none")
    root = ET.fromstring(vd.disk_xml(spec, "sdc"))
    assert (root.tag, root.get("type"), root.get("device")) == ("disk", "volume", "disk")
    assert root.find("source").attrib == {"pool": "p<1>", "volume": name}
    assert root.find("target").attrib == {"dev": "sdc", "bus": "scsi"}
    assert root.find("driver").attrib == {"name": "qemu", "type": "qcow2", "cache": "none"}
    assert root.find("readonly") is not None and root.find("shareable") is not None
    plain = ET.fromstring(vd.disk_xml(vd.DiskSpec(pool="p", volume="v"), "vdb"))
    assert plain.find("readonly") is None and plain.find("shareable") is None
    assert "cache" not in plain.find("driver").attrib
    with pytest.raises(InvalidRequest, match="bus"):
        vd.disk_xml(vd.DiskSpec(pool="p", volume="v", bus="ide"), "hda")
    with pytest.raises(InvalidRequest, match="cache"):
        vd.disk_xml(vd.DiskSpec(pool="p", volume="v", cache="sometimes"), "vdb")


def _use(target: str, *, readonly: bool = False, shareable: bool = False) -> SimpleNamespace:
    return SimpleNamespace(target=target, readonly=readonly, shareable=shareable)


@pytest.mark.parametrize(("other", "readonly", "shareable", "refused"), [
    (_use("vdb"), False, False, "already uses this volume read-write as vdb: both disks must be marked shareable"),
    (_use("vdb"), False, True, "both disks must be marked shareable"),
    (_use("vdb", shareable=True), False, False, "both disks must be marked shareable"),
    (_use("vdb", shareable=True), False, True, ""),
    (_use("vdb", readonly=True), True, False, ""),  # two readers
    (_use("vdb", readonly=True), False, False, "attach it read-only too, or mark both disks shareable"),
    (_use("vdb"), True, False, "read-write"),  # a reader would see the writer's changes under it
])
def test_sharing_rule(other, readonly, shareable, refused):
    found = vd.sharing_refusal([("db1", other)], domain_name="db2", readonly=readonly, shareable=shareable)
    assert (refused in found and found.startswith("VM db1")) if refused else found == ""


def test_a_vm_never_gets_one_volume_twice():
    found = vd.sharing_refusal([("db1", _use("vdb", readonly=True, shareable=True))], domain_name="db1",
                               readonly=True, shareable=True)
    assert found == "VM db1 already has this volume as vdb."
    assert vd.sharing_refusal([], domain_name="db1", readonly=False, shareable=False) == ""


def test_summary_says_what_happened():
    change = vd.DiskChange("attached", "db1", "sdc", persistent=True, live=False,
                           notes=["Not attached live: sata has no hotplug."])
    assert change.summary() == "sdc attached persistently on db1. Not attached live: sata has no hotplug."
    assert vd.DiskChange("detached", "db1", "sdb", True, True).summary() == "sdb detached persistently and live on db1."


# -- On the real libvirtd -----------------------------------------------------------------------------

@pytest.fixture
def lv() -> Iterator[LibvirtHost]:
    with open_host(LIBVIRT_URI, shared=False) as host:
        yield host


@pytest.fixture
def running_pool() -> Iterator[ScratchPool]:
    with qemu_pool() as pool:
        for name in ("a.img", "b.img", "c.img"):
            pool.create_volume(name, "8M")
        pool.create_volume("q.qcow2", "16M", "qcow2")
        yield pool


@pytest.fixture
def stopped_vm(tmp_path, scratch_pool) -> Iterator[TestVM]:
    scratch_pool.create_volume("boot.qcow2", "16M", "qcow2")
    with defined_vm(tmp_path, disks=[
        disk("vda", file=str(scratch_pool.path / "boot.qcow2"), fmt="qcow2"),
        disk("sda", "sata", device="cdrom", readonly=True),
    ]) as vm:
        yield vm


@pytest.fixture
def running_vm(tmp_path) -> Iterator[TestVM]:
    with defined_vm(tmp_path) as vm:
        yield vm.start()


def test_list_domains_matches_virsh(lv, stopped_vm, scratch_pool):
    found = {d.name: d for d in vd.list_domains(lv)}
    info = found[stopped_vm.name]
    assert (info.uuid, info.state, info.vcpus, info.memory_kib, info.persistent) == (
        stopped_vm.uuid, "shut off", 1, 64 * 1024, True)
    blk = stopped_vm.blklist()
    assert {d.target: d.path or "-" for d in info.disks} == blk
    assert blk["vda"] == str(scratch_pool.path / "boot.qcow2")
    cdrom = next(d for d in info.disks if d.target == "sda")
    assert (cdrom.device, cdrom.bus, cdrom.readonly) == ("cdrom", "sata", True)
    sources = dict(lv.domain_disks())  # the volume operations' view: only disks with a source
    assert [d for name, d in lv.domain_disks() if name == stopped_vm.name] == [
        {"file": str(scratch_pool.path / "boot.qcow2"), "target": "vda"}]
    assert stopped_vm.name in sources


def test_attach_and_detach_persistently_on_a_stopped_vm(lv, stopped_vm, scratch_pool):
    scratch_pool.create_volume("data.qcow2", "32M", "qcow2")
    spec = vd.DiskSpec(pool=scratch_pool.name, volume="data.qcow2", format="qcow2", bus="scsi", readonly=True,
                       shareable=True, cache="writethrough")
    change = vd.attach_volume(lv, stopped_vm.uuid, spec)
    assert (change.target, change.persistent, change.live) == ("sdb", True, False)  # sda is the CD-ROM
    assert "not running" in change.summary()
    assert stopped_vm.blklist(inactive=True)["sdb"] == "data.qcow2"
    element = stopped_vm.disk("sdb", inactive=True)
    assert element.get("type") == "volume"
    assert element.find("source").attrib == {"pool": scratch_pool.name, "volume": "data.qcow2"}
    assert element.find("driver").get("type") == "qcow2" and element.find("driver").get("cache") == "writethrough"
    assert element.find("readonly") is not None and element.find("shareable") is not None
    with pytest.raises(InvalidRequest, match="already has a disk sdb"):
        vd.attach_volume(lv, stopped_vm.uuid, vd.DiskSpec(pool=scratch_pool.name, volume="data.qcow2",
                                                           bus="scsi", target="sdb"))

    change = vd.detach_disk(lv, stopped_vm.uuid, "sdb", timeout=1)
    assert (change.persistent, change.live) == (True, False)
    assert "sdb" not in stopped_vm.blklist(inactive=True)
    assert "vda" in stopped_vm.blklist(inactive=True)
    with pytest.raises(ObjectNotFound, match="has no disk sdb"):
        vd.detach_disk(lv, stopped_vm.uuid, "sdb", timeout=1)


def test_attach_and_detach_live_on_a_running_vm_with_scsi(lv, running_vm, running_pool):
    spec = vd.DiskSpec(pool=running_pool.name, volume="a.img", bus="scsi")
    change = vd.attach_volume(lv, running_vm.uuid, spec)
    assert (change.target, change.persistent, change.live, change.notes) == ("sda", True, True, [])
    assert running_vm.blklist()["sda"] == "a.img"
    assert running_vm.blklist(inactive=True)["sda"] == "a.img"
    assert [d.target for d in vd.domain(lv, running_vm.uuid).disks] == ["sda"]

    change = vd.detach_disk(lv, running_vm.uuid, "sda", timeout=10)
    assert (change.persistent, change.live) == (True, True)
    assert "sda" not in running_vm.blklist() and "sda" not in running_vm.blklist(inactive=True)


def test_a_virtio_disk_hotplugs_but_a_guest_without_an_os_never_releases_it(lv, running_vm, running_pool):
    change = vd.attach_volume(lv, running_vm.uuid, vd.DiskSpec(pool=running_pool.name, volume="q.qcow2",
                                                               format="qcow2"))
    assert (change.target, change.live, change.persistent) == ("vda", True, True)
    assert running_vm.blklist()["vda"] == "q.qcow2"
    started = time.monotonic()
    with pytest.raises(vd.DetachTimeout) as refused:
        vd.detach_disk(lv, running_vm.uuid, "vda", timeout=1)
    assert time.monotonic() - started < 30
    message = str(refused.value)
    assert "did not release vda within 1 s" in message and "still attached to the running VM" in message
    assert "out of the VM's persistent definition" in message
    assert "vda" in running_vm.blklist()  # the guest still has it
    assert "vda" not in running_vm.blklist(inactive=True)  # its next start will not


def test_sata_is_attached_persistently_only_on_a_running_vm(lv, running_vm, running_pool):
    change = vd.attach_volume(lv, running_vm.uuid, vd.DiskSpec(pool=running_pool.name, volume="b.img", bus="sata"))
    assert (change.target, change.persistent, change.live) == ("sda", True, False)
    assert "sata has no hotplug" in change.summary()
    assert "sda" not in running_vm.blklist() and running_vm.blklist(inactive=True)["sda"] == "b.img"
    change = vd.detach_disk(lv, running_vm.uuid, "sda", timeout=1)
    assert (change.persistent, change.live) == (True, False)
    assert "sda" not in running_vm.blklist(inactive=True)


def test_what_libvirt_refuses_live_is_reported(lv, tmp_path, running_pool):
    """Without a free PCIe root port a virtio disk cannot be hotplugged: attached persistently, and the result
    quotes libvirt's refusal of the live part."""
    with defined_vm(tmp_path, root_ports=BUSY_ROOT_PORTS) as vm:
        vm.start()
        change = vd.attach_volume(lv, vm.uuid, vd.DiskSpec(pool=running_pool.name, volume="c.img"))
        assert (change.persistent, change.live) == (True, False)
        assert "libvirt refused the live attach: " in change.summary()
        assert "vda" not in vm.blklist() and vm.blklist(inactive=True)["vda"] == "c.img"
