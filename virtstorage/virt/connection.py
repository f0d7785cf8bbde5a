"""libvirt connections, opened lazily per process.

Facts this module respects (measured on libvirt 9.0):
- a connection inherited across fork() and closed in the child breaks the
  parent's, so connections are cached per process id and opened on first use,
  never before a Celery prefork worker forks;
- one long call (a clone) stalls other calls on the same connection, so long
  operations ask for a dedicated connection (``open_host(uri, shared=False)``);
- keepalive needs a running event loop, so one is started per process before
  the first connection; a dead peer is then noticed within seconds;
- a URI can run programs on this server (the ext transport, command=...): every
  connection is opened only after ``uris.check_uri`` accepted its URI;
- a worker started beside a remote host reaches that host's libvirtd through this machine's own
  socket (``serve_here``), so it moves volume bytes in place as for a local host (localfile.py);
  only after checking, once per process, that both URIs answer as the same daemon.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import libvirt

from . import domains, uris, xmlio
from .domains import DomainInfo
from .errors import (
    ASYNC_JOBS_RUNNING,
    HostUnreachable,
    InvalidRequest,
    ObjectNotFound,
    PoolBusy,
    VirtError,
    translate,
    translated,
)
from .text import _
from .types import HostFacts, PoolInfo, VolumeInfo

CONNECT_TIMEOUT_SECONDS = 15.0
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
REFRESH_WAIT_SECONDS = 120.0  # how long refresh_pool waits out a volume libvirt builds in the pool
PARALLEL_REQUESTS = 4  # libvirtd's default max_client_requests is 5; leave one for other calls

_lock = threading.Lock()
_event_loop_pid: int | None = None
_shared: dict[tuple[int, str], libvirt.virConnect] = {}
# Registered host URIs whose daemon is this machine's libvirtd -> this machine's URI (serve_here), and which of
# them this process has seen answer as that daemon.
_here: dict[str, str] = {}
_same_daemon: set[tuple[int, str]] = set()


def _quiet_error_handler(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we raise them instead."""


def _ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a thread of this process."""
    global _event_loop_pid
    pid = os.getpid()
    if _event_loop_pid == pid:
        return
    if _event_loop_pid is None:
        libvirt.registerErrorHandler(_quiet_error_handler, None)
        libvirt.virEventRegisterDefaultImpl()

    def run() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-event-loop", daemon=True).start()
    _event_loop_pid = pid


def _non_interactive(uri: str) -> str:
    """Make ssh transports fail instead of prompting on a terminal nobody watches.

    Takes a URI check_uri accepted (its normal form), so appending no_tty=1 is all it needs to do.
    """
    parts = urlsplit(uri)
    if parts.scheme.partition("+")[2] not in uris.SSH_TRANSPORTS:
        return uri
    params = parts.query.split("&") if parts.query else []
    if "no_tty=1" not in params:
        params.append("no_tty=1")
    return urlunsplit(parts._replace(query="&".join(params)))


def _open(uri: str, timeout: float) -> libvirt.virConnect:
    """Open a connection, giving up after ``timeout`` seconds (ssh can hang for minutes).

    Raises InvalidRequest, before anything else happens, when the URI is not on the allow-list.
    """
    target = _non_interactive(uris.check_uri(uri, key_dir=uris.configured_key_dir()))
    _ensure_event_loop()
    result: dict[str, object] = {}

    def connect() -> None:
        try:
            result["conn"] = libvirt.openAuth(target, [[], None, None], 0)
        except libvirt.libvirtError as exc:
            result["error"] = exc

    worker = threading.Thread(target=connect, name=f"libvirt-open {uri}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HostUnreachable(_("no answer from %(uri)s within %(seconds)s s")
                              % {"uri": uri, "seconds": f"{timeout:.0f}"})
    if "error" in result:
        exc = result["error"]
        assert isinstance(exc, libvirt.libvirtError)
        raise HostUnreachable(exc.get_error_message() or str(exc), exc.get_error_code())
    conn = result["conn"]
    assert isinstance(conn, libvirt.virConnect)
    try:
        conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
    except libvirt.libvirtError:
        pass  # local drivers (test:///) have no keepalive; nothing to watch
    return conn


def _shared_connection(uri: str, timeout: float) -> libvirt.virConnect:
    key = (os.getpid(), uri)
    with _lock:
        conn = _shared.get(key)
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
            _shared.pop(key, None)
        conn = _open(uri, timeout)
        _shared[key] = conn
        return conn


def forget_connection(uri: str) -> None:
    """Drop this process's cached connection to uri (after libvirtd restarted, say)."""
    with _lock:
        conn = _shared.pop((os.getpid(), uri), None)
    if conn is not None:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass


class LibvirtHost:
    """One libvirt host as the app sees it: plain data in, plain data out."""

    def __init__(self, uri: str, conn: libvirt.virConnect, *, dedicated: bool) -> None:
        self.uri = uri
        self._conn = conn
        self._dedicated = dedicated

    def close(self) -> None:
        if self._dedicated:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass

    # -- facts ---------------------------------------------------------------
    def facts(self) -> HostFacts:
        with translated():
            model, memory_mib, cpus, *_ = self._conn.getInfo()
            return HostFacts(
                hostname=self._conn.getHostname(),
                libvirt_version=_version(self._conn.getLibVersion()),
                hypervisor=self._conn.getType(),
                hypervisor_version=_version(self._conn.getVersion()),
                cpu_model=model,
                cpus=cpus,
                memory_bytes=memory_mib * 1024 * 1024,
                host_uuid=self._host_uuid(),
            )

    def _host_uuid(self) -> str:
        try:
            return xmlio.capabilities_host_uuid(self._conn.getCapabilities())
        except libvirt.libvirtError:  # a driver without capabilities: no UUID to compare
            return ""

    # -- pools ---------------------------------------------------------------
    def raw_pool(self, name: str) -> libvirt.virStoragePool:
        """The libvirt pool object, for operation modules of this package only."""
        with translated():
            return self._conn.storagePoolLookupByName(name)

    def raw_volume(self, pool_name: str, name: str) -> libvirt.virStorageVol:
        """The libvirt volume object, for operation modules of this package only."""
        with translated():
            return self.raw_pool(pool_name).storageVolLookupByName(name)

    def pools(self) -> list[PoolInfo]:
        """Every pool on the host, less those gone between the listing and the lookup (another client's
        undefine, a transient pool stopped): one vanished pool must not fail the whole host's listing."""
        with translated():
            listed = self._conn.listAllStoragePools()
        found = []
        for pool in listed:
            try:
                found.append(self._pool_info(pool))
            except ObjectNotFound:
                continue
        return found

    def pool(self, name: str) -> PoolInfo:
        return self._pool_info(self.raw_pool(name))

    @staticmethod
    def _pool_info(pool: libvirt.virStoragePool) -> PoolInfo:
        with translated():
            return xmlio.parse_pool(
                pool.XMLDesc(0),
                active=bool(pool.isActive()),
                autostart=bool(pool.autostart()),
                persistent=bool(pool.isPersistent()),
            )

    def refresh_pool(self, name: str, *, wait: float = REFRESH_WAIT_SECONDS) -> bool:
        """Ask libvirt to rescan the pool (finds files added behind its back, probes formats anew); False when
        the pool is stopped (nothing to rescan).

        libvirt refuses while it builds a volume in the pool (a clone, another job's create): "pool … has
        asynchronous jobs running". Then this asks again every 0.2 s for up to `wait` seconds, so jobs in one
        pool do not fail each other; past that (or with wait=0) the refusal is raised (PoolBusy)."""
        deadline = time.monotonic() + wait
        with translated():
            pool = self.raw_pool(name)
            if not pool.isActive():
                return False
        while True:
            try:
                with translated():
                    pool.refresh(0)
                return True
            except VirtError as exc:
                if ASYNC_JOBS_RUNNING not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise PoolBusy(str(exc), exc.code) from exc
            time.sleep(0.2)

    def start_pool(self, name: str) -> None:
        """Start (libvirt: create) a defined pool: its volumes become usable again."""
        with translated():
            self.raw_pool(name).create(0)

    def define_dir_pool(self, name: str, path: str, *, build: bool = True, start: bool = True,
                        autostart: bool = False) -> PoolInfo:
        with translated():
            pool = self._conn.storagePoolDefineXML(xmlio.dir_pool_xml(name, path), 0)
            if build:
                pool.build(0)
            if start:
                pool.create(0)
            if autostart:
                pool.setAutostart(1)
        return self._pool_info(pool)

    # -- volumes -------------------------------------------------------------
    def volumes(self, pool_name: str) -> list[VolumeInfo]:
        """Every volume of an active pool, with one round trip per volume (its XML holds every field).

        The round trips go out from a few threads at once, each with its share of the volumes: libvirtd
        serves up to 5 requests of one client in parallel. Each thread parses the XML it got while the
        others wait for theirs (libvirt's calls let go of the GIL), so parsing adds little to the wall time.
        """
        with translated():
            vols = self.raw_pool(pool_name).listAllVolumes(0)
        share = max(1, -(-len(vols) // PARALLEL_REQUESTS))  # an empty pool too
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            parts = pool.map(_described, [vols[i:i + share] for i in range(0, len(vols), share)])
            return [info for part in parts for info in part]

    def volume(self, pool_name: str, name: str) -> VolumeInfo:
        with translated():
            return xmlio.parse_volume(self.raw_volume(pool_name, name).XMLDesc(0))

    def has_volume(self, pool_name: str, name: str) -> bool:
        try:
            self.raw_volume(pool_name, name)
        except ObjectNotFound:
            return False
        return True

    def create_volume_xml(self, pool_name: str, xml: str, flags: int = 0) -> VolumeInfo:
        with translated():
            vol = self.raw_pool(pool_name).createXML(xml, flags)
            return xmlio.parse_volume(vol.XMLDesc(0))

    def delete_volume(self, pool_name: str, name: str) -> None:
        with translated():
            self.raw_volume(pool_name, name).delete(0)

    # -- domains -------------------------------------------------------------
    def domains(self) -> list[DomainInfo]:
        """Every VM defined (or running) on the host, with its disks (see ``domains``)."""
        return domains.list_domains(self)

    def domain_disks(self) -> list[tuple[str, dict[str, str]]]:
        """(domain name, disk source) for every disk with a source of every domain: {'file'|'dev'|'pool'+'volume':
        ...} plus 'target', as the volume operations' "in use" check reads them."""
        result = []
        for dom in self.domains():
            for disk in dom.disks:
                if disk.pool:
                    source = {"pool": disk.pool, "volume": disk.volume}
                elif disk.path and disk.source_type in ("file", "block"):
                    source = {"file" if disk.source_type == "file" else "dev": disk.path}
                else:
                    continue
                result.append((dom.name, {**source, "target": disk.target}))
        return result

    # -- raw access for operations in this package ----------------------------
    @property
    def raw(self) -> libvirt.virConnect:
        """The libvirt connection, for operation modules of this package only."""
        return self._conn


def _described(vols: list[libvirt.virStorageVol]) -> list[VolumeInfo]:
    """These volumes as libvirt describes them now, less those deleted since the listing."""
    found = (_volume_xml_or_none(vol) for vol in vols)
    return [xmlio.parse_volume(xml) for xml in found if xml is not None]


def _volume_xml_or_none(vol: libvirt.virStorageVol) -> str | None:
    """A volume's XML, or None when it was deleted between the listing and the lookup."""
    try:
        return vol.XMLDesc(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise translate(exc) from exc


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def serve_here(registered: Iterable[str], local_uri: str) -> None:
    """Open these registered host URIs through local_uri, this machine's libvirtd: set on a worker that runs
    beside a remote host (its queue), so the bytes of its transfers never cross the network twice.

    Each is checked on first use in each process: its own URI and local_uri must answer with the same host
    UUID and host name, or open_host refuses (InvalidRequest) rather than act on another daemon's storage."""
    key_dir = uris.configured_key_dir()
    local = uris.check_uri(local_uri, key_dir=key_dir)
    with _lock:
        _here.clear()
        _here.update({normal: local for uri in registered if (normal := uris.check_uri(uri, key_dir=key_dir)) != local})
        _same_daemon.clear()


def _reach(uri: str, timeout: float) -> str:
    """The URI to open for the registered uri: this machine's, for a host served here (see serve_here)."""
    local = _here.get(uri)
    if local is None or (os.getpid(), uri) in _same_daemon:
        return local or uri
    if _daemon_identity(local, timeout) != _daemon_identity(uri, timeout):
        raise InvalidRequest(_("%(uri)s is set to be reached through this machine's libvirtd (%(local)s), but "
                               "that is another host's daemon: correct LIBVIRT_HOSTS_HERE where this process runs.")
                             % {"uri": uri, "local": local})
    _same_daemon.add((os.getpid(), uri))
    return local


def _daemon_identity(uri: str, timeout: float) -> tuple[str, str]:
    """(host UUID, host name) as the daemon at uri reports them."""
    conn = _open(uri, timeout)
    try:
        with translated():
            return xmlio.capabilities_host_uuid(conn.getCapabilities()), conn.getHostname()
    finally:
        conn.close()


@contextmanager
def open_host(uri: str, *, shared: bool = True, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Iterator[LibvirtHost]:
    """A LibvirtHost for uri: the process's shared connection, or a dedicated one for long work. For a host
    served here (serve_here) the connection and the LibvirtHost's uri are this machine's.

    Raises InvalidRequest when the URI is not one the app may open (see ``uris``): nothing runs then,
    and a cached connection is not handed out either (checked here, and again by ``_open``).
    """
    uris.check_uri(uri, key_dir=uris.configured_key_dir())
    target = _reach(uri, timeout)
    if shared:
        conn = _shared_connection(target, timeout)
    else:
        conn = _open(target, timeout)
    host = LibvirtHost(target, conn, dedicated=not shared)
    try:
        yield host
    except HostUnreachable:
        if shared:
            forget_connection(target)
        raise
    finally:
        host.close()


__all__ = ["LibvirtHost", "ObjectNotFound", "forget_connection", "open_host", "serve_here"]
