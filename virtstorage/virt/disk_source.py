"""Switch a stopped VM's disk from a file to a pool volume: the disk keeps its target, bus, address and flags,
and its <source file=…> becomes <source pool=… volume=…> (<disk type='volume'>). No Django imports.

The persistent definition is read with its secrets (VIR_DOMAIN_XML_SECURE: a VNC password would otherwise be
lost), the one <disk> is changed with ElementTree, and the whole definition is defined again: libvirt has no
call that changes a disk's source type in a definition. Only a VM that is not running is changed, so there is
no live definition to keep in step.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libvirt

from .errors import InvalidRequest, ObjectNotFound, translated
from .text import _

if TYPE_CHECKING:
    from .connection import LibvirtHost

SWITCHABLE_DEVICES = ("disk", "cdrom", "floppy")  # a lun needs a block device
_DROPPED = ("backingStore", "mirror")  # what described the old file's chain or copy


@dataclass(frozen=True)
class SwitchedDisk:
    domain: str
    target: str
    old_path: str
    pool: str
    volume: str

    def summary(self) -> str:
        return (_("%(target)s of %(vm)s is now volume %(volume)s of pool %(pool)s (it was %(path)s, which stays "
                  "where it is).")
                % {"target": self.target, "vm": self.domain, "volume": self.volume, "pool": self.pool,
                   "path": self.old_path})


def _register_namespaces(xml: str) -> None:
    """Keep the prefixes of <metadata> elements as they were (ElementTree would write ns0:…)."""
    for _event, (prefix, uri) in ET.iterparse(io.StringIO(xml), events=("start-ns",)):
        try:
            ET.register_namespace(prefix, uri)
        except ValueError:  # a reserved prefix such as ns0: ElementTree's own name then
            pass


def disk_to_volume(domain_xml: str, target: str, *, pool: str, volume: str, fmt: str, expected_path: str) -> str:
    """The domain XML with disk `target` switched to the pool volume (driver type fmt). Refused
    (InvalidRequest) unless that disk is a file or block disk whose source is expected_path."""
    _register_namespaces(domain_xml)
    root = ET.fromstring(domain_xml)
    disk = next((d for d in root.findall("devices/disk") if (t := d.find("target")) is not None
                 and t.get("dev") == target), None)
    name = (root.findtext("name") or "").strip()
    if disk is None:
        raise ObjectNotFound(_("%(vm)s has no disk %(target)s (any more).") % {"vm": name, "target": target})
    source = disk.find("source")
    path = (source.get("file") or source.get("dev") or "") if source is not None else ""
    if disk.get("type", "file") not in ("file", "block") or path != expected_path:
        values = {"target": target, "vm": name, "now": path, "type": disk.get("type"), "expected": expected_path}
        raise InvalidRequest((_("%(target)s of %(vm)s is %(now)s now, not %(expected)s: it was changed since; nothing "
                                "was switched.") if path else
                              _("%(target)s of %(vm)s is a %(type)s disk now, not %(expected)s: it was changed since; "
                                "nothing was switched.")) % values)
    if disk.get("device", "disk") not in SWITCHABLE_DEVICES:
        raise InvalidRequest(_("%(target)s of %(vm)s is a %(device)s device, which needs a block device.")
                             % {"target": target, "vm": name, "device": disk.get("device")})
    disk.set("type", "volume")
    for tag in _DROPPED:
        for element in disk.findall(tag):
            disk.remove(element)
    at = list(disk).index(source)
    disk.remove(source)
    disk.insert(at, ET.Element("source", pool=pool, volume=volume))
    driver = disk.find("driver")
    if driver is None:
        driver = ET.Element("driver", name="qemu")
        disk.insert(0, driver)
    driver.set("type", fmt)
    return ET.tostring(root, encoding="unicode")


def switch_disk_to_volume(lv: LibvirtHost, uuid: str, target: str, *, pool: str, volume: str, fmt: str,
                          expected_path: str) -> SwitchedDisk:
    """Rewrite the stopped VM's persistent definition (disk_to_volume) and define it again."""
    with translated():
        dom = lv.raw.lookupByUUIDString(uuid)
        name = dom.name()
        if dom.isActive():
            raise InvalidRequest(_("%(vm)s is running: its disk is switched only while it is shut off.") % {"vm": name})
        if not dom.isPersistent():
            raise InvalidRequest(_("%(vm)s is transient: it has no definition to change.") % {"vm": name})
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    new_xml = disk_to_volume(xml, target, pool=pool, volume=volume, fmt=fmt, expected_path=expected_path)
    with translated():
        if dom.isActive():  # started meanwhile: its running disk stays the file, so do not change the definition
            raise InvalidRequest(_("%(vm)s was started meanwhile: nothing was switched.") % {"vm": name})
        lv.raw.defineXML(new_xml)
    return SwitchedDisk(name, target, expected_path, pool, volume)


__all__ = ["SwitchedDisk", "disk_to_volume", "switch_disk_to_volume"]
