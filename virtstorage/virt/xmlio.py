"""Parse and build libvirt XML with ElementTree, never with string formatting."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .types import PoolInfo, VolumeInfo
from .units import UNIT_FACTORS


def _size(element: ET.Element | None) -> int:
    """A libvirt scaled integer (<capacity unit='KiB'>…) in bytes; 0 when absent."""
    if element is None or not (element.text or "").strip():
        return 0
    unit = (element.get("unit") or "bytes").lower()
    return int(element.text.strip()) * UNIT_FACTORS.get(unit, 1)


def _text(root: ET.Element, path: str) -> str:
    found = root.find(path)
    return (found.text or "").strip() if found is not None else ""


def parse_volume(xml: str) -> VolumeInfo:
    root = ET.fromstring(xml)
    # Each element looked up once, from its parent: a sync parses 10,000 of these.
    target = root.find("target")
    backing = root.find("backingStore")
    return VolumeInfo(
        name=_text(root, "name"),
        key=_text(root, "key"),
        path=_text(target, "path") if target is not None else "",
        type=root.get("type", "file"),
        format=_type_of(target),
        capacity=_size(root.find("capacity")),
        allocation=_size(root.find("allocation")),
        physical=_size(root.find("physical")),
        backing_path=_text(backing, "path") if backing is not None else "",
        backing_format=_type_of(backing),
        ctime_ns=_timestamp_ns(_text(target, "timestamps/ctime")) if target is not None else 0,
        xml=xml,
    )


def _type_of(parent: ET.Element | None) -> str:
    """The type attribute of parent's <format>; "" when either is absent."""
    found = parent.find("format") if parent is not None else None
    return found.get("type", "") if found is not None else ""


def _timestamp_ns(text: str) -> int:
    """libvirt's "seconds.nanoseconds" (nanoseconds may be absent) in nanoseconds; 0 when absent."""
    seconds, _, fraction = text.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        return 0
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9] or 0)


def parse_pool(xml: str, *, active: bool, autostart: bool, persistent: bool) -> PoolInfo:
    root = ET.fromstring(xml)
    return PoolInfo(
        name=_text(root, "name"),
        uuid=_text(root, "uuid"),
        type=root.get("type", ""),
        active=active,
        autostart=autostart,
        persistent=persistent,
        capacity=_size(root.find("capacity")),
        allocation=_size(root.find("allocation")),
        available=_size(root.find("available")),
        target_path=_text(root, "target/path"),
        xml=xml,
    )


def capabilities_host_uuid(xml: str) -> str:
    """The host UUID in a daemon's capabilities XML ("" when it names none)."""
    return _text(ET.fromstring(xml), "host/uuid")


def to_string(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def dir_pool_xml(name: str, path: str) -> str:
    """XML of a `dir` pool rooted at path."""
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = name
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "path").text = path
    return to_string(root)


def volume_xml(
    name: str,
    capacity: int,
    *,
    fmt: str = "raw",
    allocation: int | None = None,
    backing_path: str | None = None,
    backing_format: str | None = None,
) -> str:
    """XML of a new volume; allocation None lets libvirt choose, 0 makes it thin."""
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(int(capacity))
    if allocation is not None:
        ET.SubElement(root, "allocation", unit="bytes").text = str(int(allocation))
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type=fmt)
    if backing_path:
        backing = ET.SubElement(root, "backingStore")
        ET.SubElement(backing, "path").text = backing_path
        if backing_format:
            ET.SubElement(backing, "format", type=backing_format)
    return to_string(root)


def domain_disk_sources(xml: str) -> list[dict[str, str]]:
    """The disks of a domain: each as {'file'|'dev'|'pool'+'volume': ...} plus 'target'."""
    root = ET.fromstring(xml)
    disks = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        if source is None:
            continue
        entry = {k: v for k, v in source.attrib.items() if k in {"file", "dev", "pool", "volume"}}
        target = disk.find("target")
        entry["target"] = target.get("dev", "") if target is not None else ""
        disks.append(entry)
    return disks
