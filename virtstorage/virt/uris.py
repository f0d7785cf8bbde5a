"""Which libvirt URIs the app may open: an allow-list, checked before every connection.

A libvirt URI can do much more than name a host. The ``ext`` transport runs the program its
``command=`` names; ssh's ``command=`` and ``netcat=`` pick the programs run; ``socket=``, ``proxy=``
and ``mode=`` pick what this server connects to; ``no_verify=``, ``pkipath=``, ``sshauth=`` and
``known_hosts_verify=`` change whom it trusts; ``keyfile=`` reads a file. Admins choose hosts, not
programs or files of this server, so only this shape passes::

    qemu[+transport]://[user@]host[:port]/system|session[?no_tty=1&keyfile=…&known_hosts=…]
    test:///default

transport: none, unix (both local), ssh, libssh, libssh2, tls or tcp. Parameters: ``no_tty=1``
(ssh transports; what the app adds itself anyway), ``keyfile=`` and ``known_hosts=`` (ssh
transports; an existing file inside the key directory). Everything else is refused.

libvirt decodes %XX in parameter names and values, splits parameters at '&' (and at ';' when no
'&' follows) and compares names without regard to case: the checks here decode the same way.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import quote, unquote, urlsplit

from .errors import InvalidRequest
from .text import _

DRIVERS = ("qemu", "test")
LOCAL_TRANSPORTS = ("", "unix")
SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")
REMOTE_TRANSPORTS = (*SSH_TRANSPORTS, "tls", "tcp")
QEMU_PATHS = ("/system", "/session")
TEST_URI = "test:///default"
# Parameters that name a file libvirt reads (or libssh writes): only inside the key directory.
KEY_FILE_PARAMETERS = ("keyfile", "known_hosts")

_EXAMPLES = "qemu:///system, qemu+ssh://root@kvm1/system, qemu+tls://kvm2/system or test:///default"
_FORBIDDEN_CHARS = set("\\\"'<>^`{|};")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_PARAM_NAME = re.compile(r"[a-z_]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_KEY_PATH = re.compile(r"[A-Za-z0-9._+@/-]+")

_key_dir: str | None = None


def configure(*, key_dir: str | os.PathLike[str] | None) -> None:
    """Set the key directory open_host checks keyfile= and known_hosts= against (None: refuse them)."""
    global _key_dir
    _key_dir = os.fspath(key_dir) if key_dir is not None else None


def configured_key_dir() -> str | None:
    return _key_dir


def check_uri(uri: str, *, key_dir: str | os.PathLike[str] | None) -> str:
    """The URI in its normal form, or InvalidRequest saying why the app may not open it."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRequest(_("Enter a libvirt URI, such as %(examples)s.") % {"examples": _EXAMPLES})
    _check_characters(uri)
    scheme, sep, _rest = uri.partition("://")
    if not sep or not scheme:
        raise InvalidRequest(_("This is not a libvirt URI: write driver[+transport]://[user@host]/path, "
                               "such as %(examples)s.") % {"examples": _EXAMPLES})
    driver, transport = _check_scheme(scheme)
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequest(_("This is not a libvirt URI: %(error)s.") % {"error": exc}) from None
    if "%" in parts.netloc or "%" in parts.path:
        raise InvalidRequest(_("Percent-encoding (%XX) is only allowed in parameter values, not in the host or "
                               "path."))
    if driver == "test":
        if uri.rstrip("?") != TEST_URI:
            raise InvalidRequest(_("The test driver is only allowed as %(uri)s.") % {"uri": TEST_URI})
        return TEST_URI
    netloc = _check_netloc(parts.netloc, transport)
    if parts.path not in QEMU_PATHS:
        if not parts.path:
            raise InvalidRequest(_("The qemu driver's path must be /system or /session, not empty."))
        raise InvalidRequest(_("The qemu driver's path must be /system or /session, not %(path)s.")
                             % {"path": parts.path})
    query = _check_query(parts.query, transport, key_dir)
    return f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _check_characters(uri: str) -> None:
    for ch in uri:
        if not "!" <= ch <= "~":
            raise InvalidRequest(_("A libvirt URI may not contain spaces, control or non-ASCII characters "
                                   "(found %(char)s).") % {"char": repr(ch)})
        if ch in _FORBIDDEN_CHARS:
            raise InvalidRequest(_("A libvirt URI may not contain %(char)s.") % {"char": repr(ch)})
    if "#" in uri:
        raise InvalidRequest(_("A libvirt URI may not have a fragment (#…)."))
    if len(uri) > 500:
        raise InvalidRequest(_("A libvirt URI may have at most 500 characters."))


def _check_scheme(scheme: str) -> tuple[str, str]:
    if scheme != scheme.lower():
        raise InvalidRequest(_("Write the scheme in lower case (%(lower)s, not %(scheme)s).")
                             % {"lower": scheme.lower(), "scheme": scheme})
    driver, _plus, transport = scheme.partition("+")
    if driver not in DRIVERS:
        raise InvalidRequest(_("The libvirt driver %(driver)s is not allowed; use qemu (or test).")
                             % {"driver": repr(driver)})
    if transport == "ext":
        raise InvalidRequest(_("The ext transport runs a program on this server when connecting; it is not "
                               "allowed."))
    if transport not in LOCAL_TRANSPORTS + REMOTE_TRANSPORTS:
        allowed = ", ".join(t for t in LOCAL_TRANSPORTS + REMOTE_TRANSPORTS if t)
        raise InvalidRequest(_("The transport %(transport)s is not allowed; use none or one of %(allowed)s.")
                             % {"transport": repr(transport), "allowed": allowed})
    if driver == "test" and transport:
        raise InvalidRequest(_("The test driver is only allowed as %(uri)s.") % {"uri": TEST_URI})
    return driver, transport


def _check_netloc(netloc: str, transport: str) -> str:
    """[user@]host[:port], host in lower case; a local transport has none, a remote one needs a host."""
    if not netloc:
        if transport in REMOTE_TRANSPORTS:
            raise InvalidRequest(_("The %(transport)s transport needs a host: qemu+%(transport)s://host/system.")
                                 % {"transport": transport})
        return ""
    if transport == "unix":
        raise InvalidRequest(_("The unix transport is local: write qemu+unix:///system, without a host."))
    user, at, hostport = netloc.rpartition("@")
    if at and (":" in user or not _USER.fullmatch(user)):
        raise InvalidRequest(_("The user name may use letters, digits, '.', '_' and '-' (no password: "
                               "use a key or certificate)."))
    host, port = _split_port(hostport)
    if port is not None and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        raise InvalidRequest(_("%(port)s is not a port number (1-65535).") % {"port": repr(port)})
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidRequest(_("%(host)s is not an IPv6 address.") % {"host": host}) from None
    elif not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise InvalidRequest(_("%(host)s is not a host name or IP address.") % {"host": repr(host)})
    return f"{user}{at}{host.lower()}" + (f":{port}" if port is not None else "")


def _split_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or (hostport[end + 1:] and not hostport[end + 1:].startswith(":")):
            raise InvalidRequest(_("%(text)s is not [IPv6 address]:port.") % {"text": repr(hostport)})
        rest = hostport[end + 2:] if hostport[end + 1:] else None
        return hostport[:end + 1], rest
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None)


def _check_query(query: str, transport: str, key_dir: str | os.PathLike[str] | None) -> str:
    if not query:
        return ""
    if _BAD_PERCENT.search(query):
        raise InvalidRequest(_("A parameter has a '%' that is not followed by two hex digits."))
    seen: set[str] = set()
    normal = []
    for piece in query.split("&"):
        raw_name, eq, raw_value = piece.partition("=")
        if not eq or not raw_name:
            raise InvalidRequest(_("Write each parameter as name=value, not %(text)s.") % {"text": repr(piece)})
        try:
            name, value = unquote(raw_name, errors="strict"), unquote(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequest(_("A parameter decodes to bytes that are not UTF-8 text.")) from None
        if name.lower() in seen:
            raise InvalidRequest(_("The parameter %(name)s is given twice.") % {"name": repr(name)})
        seen.add(name.lower())
        if not _PARAM_NAME.fullmatch(name) or name not in ("no_tty", *KEY_FILE_PARAMETERS):
            raise InvalidRequest(_("The URI parameter %(name)s is not allowed: it changes what this server runs, "
                                   "reads or trusts. Allowed: no_tty=1, keyfile= and known_hosts= (ssh).")
                                 % {"name": repr(name)})
        if transport not in SSH_TRANSPORTS:
            raise InvalidRequest(_("The parameter %(name)s only applies to the ssh, libssh and libssh2 transports.")
                                 % {"name": name})
        if name == "no_tty":
            if value != "1":
                raise InvalidRequest(_("no_tty may only be 1 (nobody watches a terminal on this server)."))
        else:
            value = key_file(value, key_dir, name)
        normal.append(f"{name}={quote(value, safe='/')}")
    return "&".join(normal)


def key_file(value: str, key_dir: str | os.PathLike[str] | None, what: str = "keyfile") -> str:
    """The absolute path of an existing file inside key_dir named by value (a name in it, or a path).

    The file is resolved (symlinks followed) and must stay inside the resolved key directory; the
    path as written, made absolute, is what libvirt gets, so a key rotated by symlink keeps working
    and is checked again at every connection.
    """
    if key_dir is None:
        raise InvalidRequest(_("%(param)s= is refused: no key directory is configured on this server.")
                             % {"param": what})
    if not value or not _KEY_PATH.fullmatch(value):
        raise InvalidRequest(_("%(param)s= must name a file in the key directory (letters, digits, . _ + @ - /).")
                             % {"param": what})
    if any(part in (".", "..") for part in value.split("/")):
        raise InvalidRequest(_("%(param)s= may not contain '.' or '..' components.") % {"param": what})
    base = os.path.abspath(os.fspath(key_dir))
    path = os.path.normpath(os.path.join(base, value))
    outside = InvalidRequest(_("%(param)s= must name a file inside the key directory %(dir)s; %(value)s is outside "
                               "it.") % {"param": what, "dir": base, "value": value})
    if not path.startswith(base.rstrip("/") + "/"):
        raise outside
    try:
        real_base = os.path.realpath(base, strict=True)
        real = os.path.realpath(path, strict=True)
    except OSError:
        raise InvalidRequest(_("%(param)s= names %(path)s, which does not exist in the key directory %(dir)s.")
                             % {"param": what, "path": path, "dir": base}) from None
    if real == real_base or os.path.commonpath([real, real_base]) != real_base:
        raise outside  # a symlink out of the directory
    if not os.path.isfile(real):
        raise InvalidRequest(_("%(param)s= names %(path)s, which is not a regular file.")
                             % {"param": what, "path": path})
    return path
