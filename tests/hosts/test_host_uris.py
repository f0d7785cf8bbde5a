"""Host URIs come from an allow-list: nothing an admin types (or a row in the database holds) makes the
server run a program, read a file outside the key directory or trust a peer it should not.

check_uri is pure and tested over many variants; then the whole path, on the real services: the host
form, the Django admin, `manage.py addhost`, the sync, the check and open_host itself, with an ext
URI whose program would leave a marker file behind if anything ran it.
"""

from __future__ import annotations

import importlib
import subprocess

import libvirt
import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from hosts.models import Host
from hosts.status import check_host
from inventory.sync import sync_host
from inventory.tasks import sync_host_task
from tests.conftest import LIBVIRT_URI
from virtstorage.virt import InvalidRequest, open_host
from virtstorage.virt.connection import _non_interactive, _open
from virtstorage.virt.uris import check_uri

ACCEPTED = [
    ("qemu:///system", "qemu:///system"),
    ("qemu:///session", "qemu:///session"),
    ("qemu:///system?", "qemu:///system"),
    ("qemu+unix:///system", "qemu+unix:///system"),
    ("qemu+ssh://root@kvm1/system", "qemu+ssh://root@kvm1/system"),
    ("qemu+ssh://root@KVM1.Example.com:2222/system?no_tty=1", "qemu+ssh://root@kvm1.example.com:2222/system?no_tty=1"),
    ("qemu+ssh://kvm1/system?no_%74ty=%31", "qemu+ssh://kvm1/system?no_tty=1"),
    ("qemu+libssh://kvm1/system", "qemu+libssh://kvm1/system"),
    ("qemu+libssh2://ops_1@kvm1/session?no_tty=1", "qemu+libssh2://ops_1@kvm1/session?no_tty=1"),
    ("qemu+tls://kvm2/system", "qemu+tls://kvm2/system"),
    ("qemu://kvm2/system", "qemu://kvm2/system"),
    ("qemu+tcp://192.0.2.7:16509/system", "qemu+tcp://192.0.2.7:16509/system"),
    ("qemu+tcp://[2001:DB8::7]:16509/system", "qemu+tcp://[2001:db8::7]:16509/system"),
    ("qemu+ssh://[2001:db8::7]/system", "qemu+ssh://[2001:db8::7]/system"),
    ("test:///default", "test:///default"),
]

REFUSED = [
    ("", "Enter a libvirt URI"),
    ("not a uri", "spaces"),
    ("/etc/passwd", "not a libvirt URI"),
    ("qemu:/system", "not a libvirt URI"),
    ("://system", "not a libvirt URI"),
    # programs run on this server
    ("qemu+ext:///system?command=/usr/local/bin/x", "ext transport runs a program"),
    ("QEMU+EXT:///system?command=/usr/local/bin/x", "lower case"),
    ("qemu+EXT:///system", "lower case"),
    ("Qemu:///system", "lower case"),
    ("qemu+ssh://h/system?command=/bin/sh", "'command' is not allowed"),
    ("qemu+ssh://h/system?%63ommand=/bin/sh", "'command' is not allowed"),
    ("qemu+ssh://h/system?%63%6F%6D%6D%61%6E%64=/bin/sh", "'command' is not allowed"),
    ("qemu+ssh://h/system?COMMAND=/bin/sh", "'COMMAND' is not allowed"),
    ("qemu+ssh://h/system?netcat=/tmp/nc", "'netcat' is not allowed"),
    ("qemu+libssh2://h/system?no_tty=1;command=/bin/sh", "';'"),
    # other sockets, other daemons, other trust
    ("qemu:///system?socket=/tmp/x", "'socket' is not allowed"),
    ("qemu+unix:///system?socket=/tmp/x", "'socket' is not allowed"),
    ("qemu+ssh://h/system?socket=/tmp/x", "'socket' is not allowed"),
    ("qemu+tls://h/system?no_verify=1", "'no_verify' is not allowed"),
    ("qemu+tls://h/system?pkipath=/tmp/pki", "'pkipath' is not allowed"),
    ("qemu+ssh://h/system?pkipath=", "'pkipath' is not allowed"),
    ("qemu+libssh2://h/system?sshauth=password", "'sshauth' is not allowed"),
    ("qemu+libssh://h/system?known_hosts_verify=ignore", "'known_hosts_verify' is not allowed"),
    ("qemu:///system?mode=legacy", "'mode' is not allowed"),
    ("qemu+ssh://h/system?proxy=native", "'proxy' is not allowed"),
    ("qemu+ssh://h/system?name=qemu:///system", "'name' is not allowed"),
    ("qemu+tcp://h/system?no_tty=1", "only applies to the ssh"),
    ("qemu:///system?no_tty=1", "only applies to the ssh"),
    # how parameters are written
    ("qemu+ssh://h/system?no_tty=1&no_tty=1", "given twice"),
    ("qemu+ssh://h/system?no_tty=1&NO_TTY=1", "given twice"),
    ("qemu+ssh://h/system?no_tty=1&no_%74ty=1", "given twice"),
    ("qemu+ssh://h/system?NO_TTY=1", "'NO_TTY' is not allowed"),
    ("qemu+ssh://h/system?no_tty=0", "no_tty may only be 1"),
    ("qemu+ssh://h/system?no_tty=1%26command%3D%2Fbin%2Fsh", "no_tty may only be 1"),
    ("qemu+ssh://h/system?no_tty", "name=value"),
    ("qemu+ssh://h/system?&no_tty=1", "name=value"),
    ("qemu+ssh://h/system?no_tty=1&", "name=value"),
    ("qemu+ssh://h/system?=1", "name=value"),
    ("qemu+ssh://h/system??no_tty=1", "'?no_tty' is not allowed"),
    ("qemu+ssh://h/system?no_tty=%ZZ", "two hex digits"),
    ("qemu+ssh://h/system?keyfile=%FF", "not UTF-8"),
    ("qemu+ssh://h/system#x", "fragment"),
    ("qemu+ssh://h/system?no_tty=1#command=/bin/sh", "fragment"),
    # user, host, port
    ("qemu+ssh://root:secret@h/system", "no password"),
    ("qemu+ssh://a@b@h/system", "no password"),
    ("qemu+ssh://-oProxyCommand=x/system", "not a host name"),
    ("qemu+ssh://-l@h/system", "user name"),
    ("qemu+ssh://h%2Fx/system", "Percent-encoding"),
    ("qemu:///sys%74em", "Percent-encoding"),
    ("qemu+ssh://h_1/system", "not a host name"),
    ("qemu+ssh://h:0/system", "port number"),
    ("qemu+ssh://h:99999/system", "port number"),
    ("qemu+ssh://h:x/system", "port number"),
    ("qemu+ssh://h:/system", "port number"),
    ("qemu+ssh://[::1/system", "not a libvirt URI"),
    ("qemu+ssh://[not:v6]/system", "IPv6 address"),
    ("qemu+ssh:///system", "needs a host"),
    ("qemu+tcp://:16509/system", "not a host name"),
    ("qemu+unix://h/system", "unix transport is local"),
    # drivers, transports, paths
    ("qemu+foo://h/system", "transport 'foo' is not allowed"),
    ("qemu+fd:///system", "transport 'fd' is not allowed"),
    ("lxc:///system", "driver 'lxc' is not allowed"),
    ("xen:///system", "driver 'xen' is not allowed"),
    ("qemu:///embed?root=/tmp/x", "must be /system or /session"),
    ("qemu:///system/", "must be /system or /session"),
    ("qemu+ssh://h/", "must be /system or /session"),
    ("test:///etc/passwd", "only allowed as test:///default"),
    ("test:///default?x=1", "only allowed as test:///default"),
    ("test+tcp://h/default", "only allowed as test:///default"),
    ("test://h/default", "only allowed as test:///default"),
    # characters
    ("qemu:///system ", "spaces"),
    (" qemu:///system", "spaces"),
    ("qemu:///sys tem", "spaces"),
    ("qemu:///system\n", "spaces"),
    ("qemu:///system\t", "spaces"),
    ("qemu:///system\x00", "spaces"),
    ("qemu:///system\x7f", "spaces"),
    ("qemu:///systém", "non-ASCII"),
    ("qemu:///system<script>", "'<'"),
    ("qemu+ssh://h\\x/system", "'\\\\'"),
    ("qemu+ssh://h/system?no_tty=1" + "&no_tty=1" * 60, "at most 500"),
]


@pytest.mark.parametrize("uri,normal", ACCEPTED)
def test_allowed_uris_come_back_in_normal_form(uri, normal):
    assert check_uri(uri, key_dir=None) == normal
    assert check_uri(normal, key_dir=None) == normal  # the normal form passes unchanged


@pytest.mark.parametrize("uri,message", REFUSED)
def test_refused_uris_say_why(uri, message):
    with pytest.raises(InvalidRequest) as exc:
        check_uri(uri, key_dir=None)
    assert message in str(exc.value), str(exc.value)


# -- keyfile= and known_hosts=: only files inside the key directory -------------------------------

@pytest.fixture
def keys(tmp_path):
    """A key directory with a key, a symlink to it (a rotated key), and one pointing out of it."""
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    (key_dir / "id_ed25519").write_text("key\n")
    (key_dir / "known_hosts").write_text("kvm1 ssh-ed25519 AAAA\n")
    (key_dir / "sub").mkdir()
    (key_dir / "sub" / "id_rsa").write_text("key\n")
    (tmp_path / "outside").write_text("not a key\n")
    (key_dir / "current").symlink_to(key_dir / "id_ed25519")
    (key_dir / "escape").symlink_to(tmp_path / "outside")
    (key_dir / "escape_dir").symlink_to(tmp_path)
    return key_dir


def test_key_files_inside_the_key_directory_are_allowed(keys):
    base = "qemu+libssh2://root@kvm1/system"
    assert check_uri(f"{base}?keyfile=id_ed25519", key_dir=keys) == f"{base}?keyfile={keys}/id_ed25519"
    assert check_uri(f"{base}?keyfile={keys}/id_ed25519", key_dir=keys) == f"{base}?keyfile={keys}/id_ed25519"
    encoded = str(keys / "id_ed25519").replace("/", "%2F")
    assert check_uri(f"{base}?keyfile={encoded}", key_dir=keys) == f"{base}?keyfile={keys}/id_ed25519"
    assert check_uri(f"{base}?keyfile=sub/id_rsa", key_dir=keys) == f"{base}?keyfile={keys}/sub/id_rsa"
    # a symlink that stays inside: kept as written, so rotating the key keeps working
    assert check_uri(f"{base}?keyfile=current", key_dir=keys) == f"{base}?keyfile={keys}/current"
    both = check_uri(f"{base}?keyfile=id_ed25519&known_hosts=known_hosts&no_tty=1", key_dir=keys)
    assert both == f"{base}?keyfile={keys}/id_ed25519&known_hosts={keys}/known_hosts&no_tty=1"
    assert check_uri(both, key_dir=keys) == both
    assert check_uri("qemu+ssh://kvm1/system?keyfile=id_ed25519", key_dir=str(keys)).endswith(
        f"keyfile={keys}/id_ed25519")


@pytest.mark.parametrize("value,message", [
    ("{outside}", "outside it"),
    ("/etc/ssh/ssh_host_ed25519_key", "outside it"),
    ("/root/.ssh/id_rsa", "outside it"),
    ("../outside", "'..'"),
    ("{keys}/../outside", "'..'"),
    ("sub/../../outside", "'..'"),
    ("%2E%2E/outside", "'..'"),
    ("./id_ed25519", "'.'"),
    ("escape", "outside it"),
    ("escape_dir/outside", "outside it"),
    ("{keys}", "outside it"),
    ("sub", "not a regular file"),
    ("missing", "does not exist"),
    ("", "must name a file"),
    ("id ed25519", "spaces"),
    ("id%20ed25519", "must name a file"),
    ("id%0Aed25519", "must name a file"),
    ("id_ed25519%00", "must name a file"),
    ("~/.ssh/id_rsa", "must name a file"),
    ("$HOME/.ssh/id_rsa", "must name a file"),
])
def test_key_files_outside_the_key_directory_are_refused(keys, value, message):
    value = value.format(keys=keys, outside=keys.parent / "outside")
    for name in ("keyfile", "known_hosts"):
        with pytest.raises(InvalidRequest) as exc:
            check_uri(f"qemu+ssh://kvm1/system?{name}={value}", key_dir=keys)
        assert message in str(exc.value), str(exc.value)


def test_key_files_need_a_key_directory_and_an_ssh_transport(keys):
    with pytest.raises(InvalidRequest, match="no key directory is configured"):
        check_uri("qemu+ssh://kvm1/system?keyfile=id_ed25519", key_dir=None)
    with pytest.raises(InvalidRequest, match="only applies to the ssh"):
        check_uri("qemu+tls://kvm1/system?keyfile=id_ed25519", key_dir=keys)
    with pytest.raises(InvalidRequest, match="given twice"):
        check_uri("qemu+ssh://kvm1/system?keyfile=id_ed25519&keyfile=current", key_dir=keys)
    with pytest.raises(InvalidRequest, match="does not exist"):
        check_uri("qemu+ssh://kvm1/system?keyfile=id_ed25519", key_dir=keys.parent / "no-such-dir")


def test_ssh_uris_still_get_no_tty_once(keys):
    """open_host adds no_tty=1 to ssh transports (no terminal to prompt on) after the check, exactly once."""
    plain = check_uri("qemu+ssh://root@kvm1/system", key_dir=keys)
    assert _non_interactive(plain) == "qemu+ssh://root@kvm1/system?no_tty=1"
    with_key = check_uri("qemu+libssh2://kvm1/system?keyfile=id_ed25519", key_dir=keys)
    assert _non_interactive(with_key) == f"{with_key}&no_tty=1"
    already = check_uri("qemu+libssh://kvm1/system?no_tty=1", key_dir=keys)
    assert _non_interactive(already) == already
    assert _non_interactive("qemu+tls://kvm1/system") == "qemu+tls://kvm1/system"
    assert _non_interactive("qemu:///system") == "qemu:///system"
    assert check_uri(_non_interactive(with_key), key_dir=keys) == _non_interactive(with_key)


# -- the whole path: nothing runs, whichever way the URI comes in --------------------------------

@pytest.fixture
def ext_uri(tmp_path):
    """An ext URI whose program would leave a marker file; returns (uri, script, marker)."""
    marker = tmp_path / "ran"
    script = tmp_path / "connect.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    return f"qemu+ext:///system?command={script}", script, marker


@pytest.mark.django_db(transaction=True)
def test_ext_uri_never_runs_its_program(admin_client, django_user_model, ext_uri):
    uri, script, marker = ext_uri
    response = admin_client.post(reverse("hosts:add"), {"name": "evil", "uri": uri, "enabled": "on"})
    assert response.status_code == 200
    assert "The ext transport runs a program on this server" in response.content.decode()
    assert not Host.objects.filter(name="evil").exists()
    # the Django admin's form (superusers only) and `manage.py addhost` refuse it the same way
    superuser = Client()
    superuser.force_login(django_user_model.objects.create_superuser("root", password="x-y-z-123456"))
    response = superuser.post("/admin/hosts/host/add/", {"name": "evil", "uri": uri, "enabled": "on",
                                                          "direct_io": "on"})
    assert response.status_code == 200 and "ext transport" in response.content.decode()
    with pytest.raises(CommandError, match="ext transport"):
        call_command("addhost", "evil", uri)
    assert not Host.objects.filter(name="evil").exists()

    # A row that got in some other way: the sync, the check and open_host all refuse before connecting.
    host = Host.objects.create(name="evil", uri=uri)
    assert sync_host(host) is None
    host.refresh_from_db()
    assert not host.enabled and "ext transport" in host.disabled_reason
    assert Host.objects.filter(pk=host.pk).exists()
    Host.objects.filter(pk=host.pk).update(enabled=True, disabled_reason="")
    sync_host_task(host.pk)
    assert not check_host(Host.objects.get(pk=host.pk))
    for shared in (True, False):
        with pytest.raises(InvalidRequest, match="ext transport"), open_host(uri, shared=shared):
            pass
    with pytest.raises(InvalidRequest):
        _open(uri, 5)
    with pytest.raises(InvalidRequest):
        _open(uri.replace("command=", "%63ommand="), 5)
    host = Host.objects.get(pk=host.pk)
    assert not host.enabled and "ext transport" in host.disabled_reason
    page = admin_client.get(host.get_absolute_url()).content.decode()
    assert 'id="host-disabled"' in page and "ext transport runs a program" in page
    assert not marker.exists()

    # The witness: the program does leave the marker when something runs it, and libvirt itself would.
    subprocess.run([str(script)], check=True, timeout=10)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(libvirt.libvirtError):
        libvirt.openAuth(uri, [[], None, None], 0)
    assert marker.exists(), "libvirt did not run the ext command: the test proves nothing"


@pytest.mark.django_db(transaction=True)
def test_saving_an_allowed_uri_clears_the_reason(admin_client):
    host = Host.objects.create(name="was-bad", uri="qemu+ssh://h/system?command=/bin/sh", enabled=False,
                               disabled_reason="Disabled by virtstorage: ...")
    response = admin_client.post(reverse("hosts:edit", args=[host.pk]),
                                 {"name": "was-bad", "uri": "test:///default", "enabled": "on"})
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.enabled and host.uri == "test:///default" and host.disabled_reason == ""


def _migration():
    return importlib.import_module("hosts.migrations.0004_uri_allow_list_and_pool_types")


@pytest.mark.django_db(transaction=True)
def test_migration_disables_hosts_with_refused_uris_and_keeps_them(ext_uri):
    uri, _script, marker = ext_uri
    good = Host.objects.create(name="good", uri=LIBVIRT_URI)
    bad = Host.objects.create(name="bad", uri="test:///default")
    Host.objects.filter(pk=bad.pk).update(uri=uri)  # as an older version's form let it in
    sneaky = Host.objects.create(name="sneaky", uri="qemu+tls://kvm9/system")
    Host.objects.filter(pk=sneaky.pk).update(uri="qemu+tls://kvm9/system?no_verify=1")

    _migration().disable_refused_uris(django_apps, None)

    bad.refresh_from_db()
    assert not bad.enabled and bad.uri == uri
    assert bad.disabled_reason.startswith("Disabled by virtstorage") and "ext transport" in bad.disabled_reason
    sneaky.refresh_from_db()
    assert not sneaky.enabled and "'no_verify' is not allowed" in sneaky.disabled_reason
    good.refresh_from_db()
    assert good.enabled and good.disabled_reason == ""
    assert Host.objects.count() == 3
    assert not marker.exists()

