"""Virtual machines (libvirt domains) and their disks: list them, attach a volume, detach a disk.

Facts this module respects (measured on libvirt 9.0 with qemu 7.2):
- listing every VM with its disks costs one round trip per VM (its XML) plus three for the whole host
  (the listing, the transient ones, every state at once); the XML round trips go out from a few threads;
- a persistent VM has two definitions: the live one (while it runs) and the persistent one. Attaching
  "persistently and live" is two calls, so the caller learns which of them happened;
- SATA (ahci) and IDE have no hotplug: qemu refuses a live attach ("Bus 'ide.2' does not support
  hotplugging") and libvirt a live detach, so neither is tried on a running VM;
- a live detach only asks the guest to let go of the disk (qemu's device_del): libvirt waits up to 5 s
  for the guest, then returns as if it had worked. A guest without an OS (or without hotplug support)
  never answers, so the disk is gone only when it has left the live XML.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import libvirt

from .errors import HostUnreachable, InvalidRequest, ObjectNotFound, OperationFailed, VirtError, translated
from .text import _, gettext_noop
from .units import UNIT_FACTORS

if TYPE_CHECKING:
    from .connection import LibvirtHost

PARALLEL_REQUESTS = 4  # libvirtd serves 5 requests of one client at once; leave one for other calls
BUSES = ("virtio", "scsi", "sata")
HOTPLUG_BUSES = frozenset({"virtio", "scsi", "usb"})
CACHE_MODES = ("none", "writethrough", "writeback", "directsync", "unsafe")
TARGET_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd", "xen": "xvd"}
MAX_TARGETS = 26 + 26 * 26  # vda..vdz, vdaa..vdzz
SHUT_OFF = gettext_noop("shut off")
# virsh's words for libvirt's states: stored and compared in English, translated where shown (_(state))
STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: gettext_noop("no state"), libvirt.VIR_DOMAIN_RUNNING: gettext_noop("running"),
    libvirt.VIR_DOMAIN_BLOCKED: gettext_noop("idle"), libvirt.VIR_DOMAIN_PAUSED: gettext_noop("paused"),
    libvirt.VIR_DOMAIN_SHUTDOWN: gettext_noop("in shutdown"), libvirt.VIR_DOMAIN_SHUTOFF: SHUT_OFF,
    libvirt.VIR_DOMAIN_CRASHED: gettext_noop("crashed"), libvirt.VIR_DOMAIN_PMSUSPENDED: gettext_noop("pmsuspended"),
}


class DiskConflict(InvalidRequest):
    """Another VM (or this one) already has the volume as a disk, in a way that forbids one more."""


class DetachTimeout(OperationFailed):
    """The guest did not release the disk in time: it is still attached to the running VM."""


@dataclass(frozen=True)
class DiskInfo:
    """One <disk> of a VM. path is the file, block device or directory (a network disk's name)."""

    target: str
    bus: str = ""
    device: str = "disk"
    source_type: str = "file"
    path: str = ""
    pool: str = ""
    volume: str = ""
    readonly: bool = False
    shareable: bool = False
    cache: str = ""
    format: str = ""

    def uses(self, pool: str, volume: str, path: str) -> bool:
        """Whether this disk is that volume: by pool and volume name, or by its path."""
        return (bool(pool) and (self.pool, self.volume) == (pool, volume)) or (bool(path) and self.path == path)


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: str
    vcpus: int
    memory_kib: int
    persistent: bool
    disks: tuple[DiskInfo, ...] = ()

    @property
    def active(self) -> bool:
        return self.state != SHUT_OFF


@dataclass(frozen=True)
class DiskSpec:
    """A volume to attach, by pool and volume name, as the guest should see it."""

    pool: str
    volume: str
    format: str = "raw"
    bus: str = "virtio"
    target: str = ""  # "": the first free one for the bus
    readonly: bool = False
    shareable: bool = False
    cache: str = ""  # "": libvirt's default


@dataclass
class DiskChange:
    """What an attach or detach did: persistently (the VM's definition) and live (the running VM)."""

    verb: str  # "attached" or "detached"
    domain: str
    target: str
    persistent: bool = False
    live: bool = False
    notes: list[str] = field(default_factory=list)  # what was not done, and why (libvirt's words)

    def summary(self) -> str:
        attached = self.verb == "attached"
        if self.persistent and self.live:
            line = (_("%(target)s attached persistently and live on %(vm)s.") if attached
                    else _("%(target)s detached persistently and live on %(vm)s."))
        elif self.persistent:
            line = (_("%(target)s attached persistently on %(vm)s.") if attached
                    else _("%(target)s detached persistently on %(vm)s."))
        elif self.live:
            line = _("%(target)s attached live on %(vm)s.") if attached else _("%(target)s detached live on %(vm)s.")
        else:
            line = (_("%(target)s attached nowhere on %(vm)s.") if attached
                    else _("%(target)s detached nowhere on %(vm)s."))
        return " ".join([line % {"target": self.target, "vm": self.domain}, *self.notes])


# -- Reading -------------------------------------------------------------------------------------

def _bool_flag(disk: ET.Element, name: str) -> bool:
    return disk.find(name) is not None


def parse_disks(xml: str) -> list[DiskInfo]:
    """Every <disk> of a domain's XML, empty CD-ROM drives included."""
    return _disks(ET.fromstring(xml))


def _disks(root: ET.Element) -> list[DiskInfo]:
    disks = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        attrs = source.attrib if source is not None else {}
        target = disk.find("target")
        driver = disk.find("driver")
        disks.append(DiskInfo(
            target=target.get("dev", "") if target is not None else "",
            bus=target.get("bus", "") if target is not None else "",
            device=disk.get("device", "disk"),
            source_type=disk.get("type", "file"),
            path=attrs.get("file") or attrs.get("dev") or attrs.get("dir") or attrs.get("name") or "",
            pool=attrs.get("pool", ""),
            volume=attrs.get("volume", ""),
            readonly=_bool_flag(disk, "readonly"),
            shareable=_bool_flag(disk, "shareable"),
            cache=driver.get("cache", "") if driver is not None else "",
            format=driver.get("type", "") if driver is not None else "",
        ))
    return disks


def _kib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip().isdigit():
        return 0
    return int(element.text.strip()) * UNIT_FACTORS.get((element.get("unit") or "KiB").lower(), 1) // 1024


def parse_domain(xml: str, *, state: str, persistent: bool) -> DomainInfo:
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    vcpus = (vcpu.get("current") or vcpu.text or "0").strip() if vcpu is not None else "0"
    memory = root.find("currentMemory")
    return DomainInfo(
        name=(root.findtext("name") or "").strip(),
        uuid=(root.findtext("uuid") or "").strip(),
        state=state,
        vcpus=int(vcpus) if vcpus.isdigit() else 0,
        memory_kib=_kib(memory if memory is not None else root.find("memory")),
        persistent=persistent,
        disks=tuple(_disks(root)),
    )


def _xml_or_none(dom: libvirt.virDomain) -> str | None:
    """A domain's XML, or None when it was undefined between the listing and the lookup."""
    try:
        with translated():
            return dom.XMLDesc(0)
    except ObjectNotFound:
        return None


def _states(conn: libvirt.virConnect, doms: list[libvirt.virDomain]) -> dict[str, str]:
    """Every domain's state by UUID, in one round trip where the driver can."""
    try:
        with translated():
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
        return {dom.UUIDString(): STATES.get(found.get("state.state"), "no state") for dom, found in stats}
    except HostUnreachable:
        raise
    except VirtError:  # a driver without the bulk call: ask each
        states = {}
        for dom in doms:
            try:
                with translated():
                    states[dom.UUIDString()] = STATES.get(dom.state(0)[0], "no state")
            except ObjectNotFound:
                pass
        return states


def list_domains(lv: LibvirtHost) -> list[DomainInfo]:
    """Every VM defined (or running) on the host, with its disks, as the running VM has them."""
    conn = lv.raw
    with translated():
        doms = conn.listAllDomains(0)
        transient = {dom.UUIDString() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
    states = _states(conn, doms)

    def fetch(dom: libvirt.virDomain) -> DomainInfo | None:
        """One VM: parsed in the thread that fetched it, while the others wait on libvirtd."""
        xml, uuid = _xml_or_none(dom), dom.UUIDString()
        return None if xml is None else parse_domain(xml, state=states.get(uuid, "no state"),
                                                     persistent=uuid not in transient)

    with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
        return [info for info in pool.map(fetch, doms) if info is not None]


def _lookup(lv: LibvirtHost, uuid: str) -> libvirt.virDomain:
    with translated():
        return lv.raw.lookupByUUIDString(uuid)


def domain(lv: LibvirtHost, uuid: str) -> DomainInfo:
    """One VM by UUID (names can change), as it runs."""
    dom = _lookup(lv, uuid)
    with translated():
        state = STATES.get(dom.state(0)[0], "no state")
        return parse_domain(dom.XMLDesc(0), state=state, persistent=bool(dom.isPersistent()))


# -- Sharing -------------------------------------------------------------------------------------

class DiskUse(Protocol):
    target: str
    readonly: bool
    shareable: bool


def sharing_refusal(uses: Iterable[tuple[str, DiskUse]], *, domain_name: str, readonly: bool,
                    shareable: bool) -> str:
    """Why the volume may not become a disk of domain_name, given the VMs that have it already
    ((VM name, disk) pairs); "" when it may.

    Two VMs may have one volume when neither writes to it, or when both disks are marked shareable
    (the guests then coordinate, with a cluster file system). A VM never gets the same volume twice."""
    for name, disk in uses:
        if name == domain_name:
            return _("VM %(vm)s already has this volume as %(target)s.") % {"vm": name, "target": disk.target}
        if (disk.readonly and readonly) or (disk.shareable and shareable):
            continue
        if disk.readonly:
            text = (_("VM %(vm)s already uses this volume read-only as %(target)s (shareable): attach it read-only "
                      "too, or mark both disks shareable.") if disk.shareable
                    else _("VM %(vm)s already uses this volume read-only as %(target)s: attach it read-only too, or "
                           "mark both disks shareable."))
        else:
            text = (_("VM %(vm)s already uses this volume read-write as %(target)s (shareable): both disks must be "
                      "marked shareable.") if disk.shareable
                    else _("VM %(vm)s already uses this volume read-write as %(target)s: both disks must be marked "
                           "shareable."))
        return text % {"vm": name, "target": disk.target}
    return ""


def volume_uses(domains: Iterable[DomainInfo], pool: str, volume: str, path: str) -> list[tuple[str, DiskInfo]]:
    """(VM name, disk) of every disk that is this volume, by pool and volume name or by path."""
    return [(dom.name, disk) for dom in domains for disk in dom.disks if disk.uses(pool, volume, path)]


# -- Building ------------------------------------------------------------------------------------

def target_name(prefix: str, index: int) -> str:
    """libvirt's naming of the index-th disk: vda..vdz, vdaa..vdaz, vdba..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def free_target(used: Iterable[str], bus: str) -> str:
    """The first target device name for the bus that no disk of the VM has (vdX for virtio, sdX for
    scsi and sata: they share the sd names)."""
    if bus not in TARGET_PREFIX:
        raise InvalidRequest(_("Unknown disk bus %(bus)s: use one of %(buses)s.")
                             % {"bus": repr(bus), "buses": ", ".join(BUSES)})
    taken = set(used)
    for index in range(MAX_TARGETS):
        name = target_name(TARGET_PREFIX[bus], index)
        if name not in taken:
            return name
    raise InvalidRequest(_("The VM has no free %(bus)s target device name left.") % {"bus": bus})


def disk_xml(spec: DiskSpec, target: str) -> str:
    """The <disk type='volume'> element that attaches the volume by pool and name (never by host path)."""
    if spec.bus not in BUSES:
        raise InvalidRequest(_("Unknown disk bus %(bus)s: use one of %(buses)s.")
                             % {"bus": repr(spec.bus), "buses": ", ".join(BUSES)})
    if spec.cache and spec.cache not in CACHE_MODES:
        raise InvalidRequest(_("Unknown cache mode %(mode)s: use one of %(modes)s.")
                             % {"mode": repr(spec.cache), "modes": ", ".join(CACHE_MODES)})
    disk = ET.Element("disk", type="volume", device="disk")
    driver = ET.SubElement(disk, "driver", name="qemu", type=spec.format or "raw")
    if spec.cache:
        driver.set("cache", spec.cache)
    ET.SubElement(disk, "source", pool=spec.pool, volume=spec.volume)
    ET.SubElement(disk, "target", dev=target, bus=spec.bus)
    if spec.readonly:
        ET.SubElement(disk, "readonly")
    if spec.shareable:
        ET.SubElement(disk, "shareable")
    return ET.tostring(disk, encoding="unicode")


def _disk_elements(xml: str) -> dict[str, ET.Element]:
    return {target.get("dev", ""): disk for disk in ET.fromstring(xml).findall("devices/disk")
            if (target := disk.find("target")) is not None}


# -- Changing ------------------------------------------------------------------------------------

def _definitions(dom: libvirt.virDomain) -> tuple[bool, bool, dict[str, ET.Element], dict[str, ET.Element]]:
    """(active, persistent, live disks, persistent disks) by target."""
    with translated():
        active, persistent = bool(dom.isActive()), bool(dom.isPersistent())
        live = _disk_elements(dom.XMLDesc(0)) if active else {}
        config = _disk_elements(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if persistent else {}
    return active, persistent, live, config


def attach_volume(lv: LibvirtHost, uuid: str, spec: DiskSpec) -> DiskChange:
    """Attach the volume persistently, and live too when the VM runs. A refused persistent attach raises
    (nothing happened); a refused live one is noted in the result (the disk shows at the next start)."""
    dom = _lookup(lv, uuid)
    active, persistent, live, config = _definitions(dom)
    used = set(live) | set(config)
    if spec.target and spec.target in used:
        raise InvalidRequest(_("%(vm)s already has a disk %(target)s.") % {"vm": dom.name(), "target": spec.target})
    target = spec.target or free_target(used, spec.bus)
    xml = disk_xml(spec, target)
    change = DiskChange("attached", dom.name(), target)
    if persistent:
        with translated():
            dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        change.persistent = True
    if not active:
        change.notes.append(_("The VM is not running: the guest sees the disk from its next start."))
        return change
    if spec.bus not in HOTPLUG_BUSES:
        if not persistent:
            raise InvalidRequest(_("A running VM cannot get a %(bus)s disk (%(bus)s has no hotplug), and this VM is "
                                   "transient: nothing was attached. Use virtio or scsi.") % {"bus": spec.bus})
        change.notes.append(_("Not attached live: %(bus)s has no hotplug. The guest sees it from its next start; "
                              "use virtio or scsi for a disk the running guest sees at once.") % {"bus": spec.bus})
        return change
    try:
        with translated():
            dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except VirtError as exc:
        if not persistent or isinstance(exc, HostUnreachable):
            raise
        change.notes.append(_("libvirt refused the live attach: %(error)s. The guest sees it from its next start.")
                            % {"error": exc})
    else:
        change.live = True
    return change


def detach_disk(lv: LibvirtHost, uuid: str, target: str, *, timeout: float, poll: float = 0.25) -> DiskChange:
    """Detach the disk persistently, and live too when the VM runs, waiting up to timeout seconds (after
    libvirt's own wait) for the guest to release it. Raises DetachTimeout, saying what was done, when the
    guest did not."""
    dom = _lookup(lv, uuid)
    active, persistent, live, config = _definitions(dom)
    if target not in live and target not in config:
        raise ObjectNotFound(_("%(vm)s has no disk %(target)s.") % {"vm": dom.name(), "target": target})
    change = DiskChange("detached", dom.name(), target)
    if target in config:
        with translated():
            dom.detachDeviceFlags(ET.tostring(config[target], encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        change.persistent = True
    if target not in live:
        return change
    bus = live[target].find("target").get("bus", "")
    if bus in ("sata", "ide", "fdc"):
        refusal = (_("%(bus)s has no hot-unplug: the running guest keeps %(target)s until the VM stops.")
                   % {"bus": bus, "target": target})
        if not change.persistent:
            raise InvalidRequest(_("Nothing was detached: %(reason)s") % {"reason": refusal})
        change.notes.append(_("Not detached live: %(reason)s") % {"reason": refusal})
        return change
    try:
        with translated():
            dom.detachDeviceFlags(ET.tostring(live[target], encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except VirtError as exc:
        if not change.persistent or isinstance(exc, HostUnreachable):
            raise
        change.notes.append(_("libvirt refused the live detach: %(error)s. The running guest keeps the disk until "
                              "the VM stops.") % {"error": exc})
        return change
    if not _wait_until_gone(dom, target, timeout, poll):
        message = (_("The guest did not release %(target)s within %(seconds)s s: it is out of the VM's persistent "
                     "definition, but it is still attached to the running VM %(vm)s. A guest without an OS or without "
                     "disk hotplug support never answers; the disk goes when the guest releases it or the VM stops.")
                   if change.persistent else
                   _("The guest did not release %(target)s within %(seconds)s s: it is still attached to the running "
                     "VM %(vm)s. A guest without an OS or without disk hotplug support never answers; the disk goes "
                     "when the guest releases it or the VM stops."))
        raise DetachTimeout(message % {"target": target, "seconds": f"{timeout:g}", "vm": dom.name()})
    change.live = True
    return change


def _wait_until_gone(dom: libvirt.virDomain, target: str, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with translated():
            if not dom.isActive() or target not in _disk_elements(dom.XMLDesc(0)):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


__all__ = ["BUSES", "CACHE_MODES", "DetachTimeout", "DiskChange", "DiskConflict", "DiskInfo", "DiskSpec",
           "DomainInfo", "attach_volume", "detach_disk", "disk_xml", "domain", "free_target", "list_domains",
           "parse_disks", "parse_domain", "sharing_refusal", "volume_uses"]
