"""A worker beside a remote host reaches its libvirtd through this machine's socket (connection.serve_here): the
host's registered URI is remote (qemu+tcp), the connection is local, so volume files are opened in place; and a
setting that names another daemon is refused instead of acting on that daemon's storage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LIBVIRT_URI
from virtstorage.virt import connection, localfile, open_host
from virtstorage.virt.errors import InvalidRequest


@pytest.fixture
def served_here() -> Iterator[None]:
    yield
    connection.serve_here([], LIBVIRT_URI)  # this process serves no host here again


def test_a_remote_uri_is_opened_as_it_is_by_default(remote_libvirt_uri, scratch_pool, served_here):
    scratch_pool.create_volume("disk.img", "4M")
    with open_host(remote_libvirt_uri, shared=False) as lv:
        assert lv.uri == remote_libvirt_uri
        assert not localfile.is_local_uri(lv.uri)
        assert localfile.open_volume_file(lv, scratch_pool.name, "disk.img") is None  # bytes go through libvirt


@pytest.mark.parametrize("shared", [True, False])
def test_a_host_served_here_is_opened_through_this_machines_daemon(remote_libvirt_uri, scratch_pool, served_here,
                                                                   shared):
    scratch_pool.create_volume("disk.img", "4M")
    connection.serve_here([remote_libvirt_uri], LIBVIRT_URI)
    with open_host(remote_libvirt_uri, shared=shared) as lv:
        assert lv.uri == LIBVIRT_URI
        volume_file = localfile.open_volume_file(lv, scratch_pool.name, "disk.img")
        assert volume_file is not None and volume_file.size == 4 * 1024 * 1024
        volume_file.close()
    with open_host(LIBVIRT_URI) as lv:  # other URIs are untouched
        assert lv.uri == LIBVIRT_URI


def test_a_setting_that_names_another_daemon_is_refused(remote_libvirt_uri, served_here):
    connection.serve_here([remote_libvirt_uri], "test:///default")  # another daemon: another host UUID
    with pytest.raises(InvalidRequest, match="LIBVIRT_HOSTS_HERE"):
        with open_host(remote_libvirt_uri, shared=False):
            pass
    with pytest.raises(InvalidRequest, match="LIBVIRT_HOSTS_HERE"):  # checked again, never cached as good
        with open_host(remote_libvirt_uri):
            pass


def test_a_host_served_here_must_pass_the_uri_allow_list(served_here):
    with pytest.raises(InvalidRequest):
        connection.serve_here(["qemu+ext:///system?command=/bin/sh"], LIBVIRT_URI)
