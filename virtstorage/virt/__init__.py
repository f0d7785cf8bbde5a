"""The libvirt layer: no Django imports.

It turns libvirt objects and XML into plain dataclasses (``types``), builds XML
with ElementTree (``xmlio``), maps libvirt errors to a few exception types
(``errors``) and owns connections (``connection``). Views and tasks use
``LibvirtHost`` and never see a raw libvirt object.
"""

from .connection import LibvirtHost, open_host
from .errors import (
    HostUnreachable,
    InvalidRequest,
    ObjectExists,
    ObjectNotFound,
    OperationFailed,
    VirtError,
)
from .types import HostFacts, PoolInfo, VolumeInfo

__all__ = [
    "HostFacts",
    "HostUnreachable",
    "InvalidRequest",
    "LibvirtHost",
    "ObjectExists",
    "ObjectNotFound",
    "OperationFailed",
    "PoolInfo",
    "VirtError",
    "VolumeInfo",
    "open_host",
]
