"""A few clear exception types instead of libvirt's hundred error codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import libvirt


class VirtError(Exception):
    """Any failure reported by libvirt, with libvirt's own message."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class HostUnreachable(VirtError):
    """The host's libvirtd cannot be reached (down, wrong URI, auth, network)."""


class ObjectNotFound(VirtError):
    """The pool, volume or domain does not exist (any more)."""


class ObjectExists(VirtError):
    """A pool or volume of that name already exists."""


class InvalidRequest(VirtError):
    """libvirt refused the arguments or XML (bad size, unsupported format...)."""


class PoolBusy(VirtError):
    """libvirt would not rescan a pool while it builds a volume in it (and kept refusing)."""


# libvirt's words (an internal error, no code of its own) for a pool it builds a volume in.
ASYNC_JOBS_RUNNING = "has asynchronous jobs running"


class OperationFailed(VirtError):
    """libvirt accepted the request but failed to carry it out."""


_NOT_FOUND = {
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_DOMAIN,
}
_UNREACHABLE = {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    libvirt.VIR_ERR_RPC,
}
_INVALID = {
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
}


def translate(error: libvirt.libvirtError) -> VirtError:
    """The exception type a libvirt error stands for."""
    code = error.get_error_code()
    message = error.get_error_message() or str(error)
    if code in _NOT_FOUND:
        cls: type[VirtError] = ObjectNotFound
    elif code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in message:
        cls = ObjectExists
    elif code == libvirt.VIR_ERR_STORAGE_VOL_EXIST or code == libvirt.VIR_ERR_DOM_EXIST:
        cls = ObjectExists
    elif code in _UNREACHABLE and error.get_error_domain() in (
        libvirt.VIR_FROM_RPC,
        libvirt.VIR_FROM_REMOTE,
        libvirt.VIR_FROM_NONE,
        libvirt.VIR_FROM_SSH,
    ):
        cls = HostUnreachable
    elif code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_AUTH_FAILED):
        cls = HostUnreachable
    elif code in _INVALID:
        cls = InvalidRequest
    else:
        cls = OperationFailed
    return cls(message, code)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise libvirt errors inside the block as VirtError subclasses."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc) from exc
