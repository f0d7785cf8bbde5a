"""Plain data the libvirt layer hands to the rest of the app."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    libvirt_version: str
    hypervisor: str
    hypervisor_version: str
    cpu_model: str
    cpus: int
    memory_bytes: int
    host_uuid: str = ""  # the daemon's host UUID (capabilities): one libvirt registered twice shows the same


@dataclass(frozen=True)
class PoolInfo:
    name: str
    uuid: str
    type: str
    active: bool
    autostart: bool
    persistent: bool
    capacity: int
    allocation: int
    available: int
    target_path: str
    xml: str


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    key: str
    path: str
    type: str
    format: str
    capacity: int  # virtual size: what the guest sees
    allocation: int  # disk size: what the host holds
    physical: int  # size of the file or device on the host
    backing_path: str = ""
    backing_format: str = ""
    ctime_ns: int = 0  # the file's status-change time as libvirt saw it (0: not reported)
    xml: str = field(default="", repr=False)

    @property
    def file_bytes(self) -> int:
        """What a download sends: the file or device's size, not the virtual size (a qcow2 downloads as the
        qcow2 file it is); the virtual size when libvirt reports no physical size."""
        return self.physical or self.capacity
