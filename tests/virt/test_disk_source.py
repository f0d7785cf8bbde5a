"""Switching a disk's source to a pool volume in domain XML (virt/disk_source.py): pure XML, no libvirtd."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from virtstorage.virt import disk_source
from virtstorage.virt.errors import InvalidRequest, ObjectNotFound

DOMAIN = """<domain type='qemu'>
  <name>vm1</name>
  <metadata><libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"><libosinfo:os id="http://debian.org/debian/12"/></libosinfo:libosinfo></metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' discard='unmap'/>
      <source file='/srv/vm1.img'><seclabel model='dac' relabel='no'/></source>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
      <serial>SER1</serial>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='network' device='disk'><source protocol='nbd' name='x'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/srv/os.iso'/>
      <target dev='sda' bus='sata'/><readonly/></disk>
    <graphics type='vnc' passwd='secret'/>
  </devices>
</domain>"""


def _disk(xml: str, target: str) -> ET.Element:
    return next(d for d in ET.fromstring(xml).findall("devices/disk") if d.find("target").get("dev") == target)


def test_the_disk_becomes_a_volume_and_keeps_everything_else():
    new = disk_source.disk_to_volume(DOMAIN, "vda", pool="p1", volume="vm1.qcow2", fmt="qcow2",
                                     expected_path="/srv/vm1.img")
    disk = _disk(new, "vda")
    assert disk.get("type") == "volume" and disk.get("device") == "disk"
    assert disk.find("source").attrib == {"pool": "p1", "volume": "vm1.qcow2"}
    assert disk.find("driver").attrib == {"name": "qemu", "type": "qcow2", "cache": "none", "discard": "unmap"}
    assert disk.find("backingStore") is None
    assert [child.tag for child in disk] == ["driver", "source", "target", "boot", "serial", "address"]
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"} and disk.findtext("serial") == "SER1"
    assert ET.tostring(_disk(new, "sda")) == ET.tostring(_disk(DOMAIN, "sda"))  # other disks untouched
    assert "passwd='secret'" in new.replace('"', "'")  # the rest of the definition, secrets included
    assert "libosinfo:os" in new  # metadata keeps its prefix


def test_a_disk_that_changed_or_cannot_be_a_volume_is_refused():
    with pytest.raises(InvalidRequest, match="not /srv/other.img"):
        disk_source.disk_to_volume(DOMAIN, "vda", pool="p", volume="v", fmt="raw", expected_path="/srv/other.img")
    with pytest.raises(InvalidRequest, match="a network disk"):
        disk_source.disk_to_volume(DOMAIN, "vdb", pool="p", volume="v", fmt="raw", expected_path="x")
    with pytest.raises(ObjectNotFound, match="no disk vdz"):
        disk_source.disk_to_volume(DOMAIN, "vdz", pool="p", volume="v", fmt="raw", expected_path="/srv/vm1.img")
    cdrom = disk_source.disk_to_volume(DOMAIN, "sda", pool="p", volume="os.iso", fmt="raw",
                                       expected_path="/srv/os.iso")
    assert _disk(cdrom, "sda").find("readonly") is not None and _disk(cdrom, "sda").get("type") == "volume"
