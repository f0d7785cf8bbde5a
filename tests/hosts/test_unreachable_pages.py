"""No page waits on libvirt: with a host that refuses connections or one that accepts and never answers,
the pool define page, the pool page, the pool's libvirt view and the host page each answer in under 1 s.

Both hosts are local: port 1 on 127.0.0.1 refuses at once, and a socket of this test accepts connections
and never says a word (libvirt would wait for it up to its 15 s connect timeout).
"""

from __future__ import annotations

import html
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from django.urls import reverse
from django.utils import timezone

from hosts.models import Host
from hosts.status import check_host
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import LIBVIRT_URI, virsh, wait_for_job
from virtstorage.virt import HostUnreachable, open_host
from virtstorage.virt.pools import PoolTypeSupport

pytestmark = pytest.mark.django_db(transaction=True)

FAST = 1.0  # seconds a page may take


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers (nor closes them until the test ends)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, name="silent-port", daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture(params=["refuses", "silent"])
def down_host(request, silent_port) -> Host:
    """A host whose libvirtd cannot be had, with a pool an earlier sync saw; recorded unreachable."""
    if request.param == "refuses":
        host = Host.objects.create(name="refuses", uri="qemu+tcp://127.0.0.1:1/system")
        started = time.monotonic()
        assert not check_host(host)  # the real check: port 1 refuses at once
        assert time.monotonic() - started < FAST
        host.refresh_from_db()
    else:
        uri = f"qemu+tcp://127.0.0.1:{silent_port}/system"
        # The witness: libvirt itself does wait on this port until it gives up.
        started = time.monotonic()
        with pytest.raises(HostUnreachable), open_host(uri, shared=False, timeout=1.5):
            pass
        assert time.monotonic() - started >= 1.4
        # What a check of it records (after 15 s; not waited for here).
        host = Host.objects.create(name="silent", uri=uri, status=Host.Status.UNREACHABLE,
                                   last_error=f"no answer from {uri} within 15 s", last_checked_at=timezone.now())
    assert host.status == Host.Status.UNREACHABLE and host.last_error
    StoragePool.objects.create(
        host=host, name="vstest-seen-before", type="dir", state=StoragePool.State.ACTIVE, capacity=10 * 1024**3,
        allocation=3 * 1024**3, available=7 * 1024**3, target_path="/var/lib/libvirt/images/seen",
        xml="<pool type='dir'><name>vstest-seen-before</name></pool>", synced_at=timezone.now(), volume_count=2)
    return host


def _timed(call, *args, **kwargs):
    started = time.monotonic()
    response = call(*args, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < FAST, f"{args[0]} took {elapsed:.2f} s"
    return response


def _record_pool_types(host: Host) -> None:
    host.pool_types = Host.pool_types_json({"dir": PoolTypeSupport("dir", True),
                                            "zfs": PoolTypeSupport("zfs", False)})
    host.pool_types_at = timezone.now()
    host.save(update_fields=["pool_types", "pool_types_at"])


def test_pages_of_an_unreachable_host_answer_at_once(admin_client, member_client, down_host, tmp_path):
    host = down_host
    pool = host.pools.get()
    define = reverse("pools:define", args=[host.pk])

    # Nothing recorded yet: the define page says so and offers a check instead of asking libvirt.
    page = _timed(admin_client.get, define).content.decode()
    assert 'id="pool-types-unrecorded"' in page and "Check host" in page
    assert _timed(admin_client.post, define, {"type": "dir", "name": "x", "action": "define"}).status_code == 200

    _record_pool_types(host)
    page = html.unescape(_timed(admin_client.get, define + "?type=dir").content.decode())
    assert "as of the last sync" in page and 'id="host-problem"' in page and host.last_error in page
    assert "unavailable" in page  # zfs, as recorded
    # Defining is refused at once with the host's last error, not after a connect timeout.
    response = _timed(admin_client.post, define + "?type=dir",
                      {"type": "dir", "name": "vstest-never", "target_path": str(tmp_path / "never"),
                       "action": "define"})
    body = html.unescape(response.content.decode())
    assert response.status_code == 200 and "was unreachable at its last check" in body and host.last_error in body
    assert not host.pools.filter(name="vstest-never").exists()

    for client in (admin_client, member_client):
        assert _timed(client.get, pool.get_absolute_url()).status_code == 200
        live = _timed(client.get, reverse("pools:live", args=[pool.pk])).content.decode()
        assert 'id="pool-live-as-of"' in live and "<dd>running</dd>" in live and "was unreachable" in live
        assert _timed(client.get, host.get_absolute_url()).status_code == 200
        assert _timed(client.get, reverse("hosts:status", args=[host.pk])).status_code == 200
    assert "Refresh from libvirt" in _timed(admin_client.get, reverse("pools:live", args=[pool.pk])).content.decode()


def test_stale_online_record_still_never_blocks_a_page(admin_client, silent_port):
    """Even when the host was fine at its last sync and hangs now, reading pages does not touch it."""
    host = Host.objects.create(name="hangs-now", uri=f"qemu+tcp://127.0.0.1:{silent_port}/system",
                               status=Host.Status.ONLINE, last_checked_at=timezone.now())
    _record_pool_types(host)
    pool = StoragePool.objects.create(host=host, name="vstest-p", type="dir", synced_at=timezone.now(),
                                      xml="<pool type='dir'><name>vstest-p</name></pool>")
    for url in (reverse("pools:define", args=[host.pk]) + "?type=dir", pool.get_absolute_url(),
                reverse("pools:live", args=[pool.pk]), host.get_absolute_url()):
        assert _timed(admin_client.get, url).status_code == 200


def test_checks_and_syncs_record_the_pool_types_the_define_page_offers(admin_client):
    """Pool types come from libvirt at check and sync time (never in a request), as virsh reports them."""
    host = Host.objects.create(name="fresh", uri=LIBVIRT_URI)
    assert host.pool_type_support() is None
    assert "pool-types-unrecorded" in admin_client.get(reverse("pools:define", args=[host.pk])).content.decode()
    assert check_host(host)
    host.refresh_from_db()
    witness = ET.fromstring(virsh("pool-capabilities"))
    recorded = host.pool_type_support()
    assert {p.get("type"): p.get("supported") == "yes" for p in witness.findall("pool")} == {
        kind: support.supported for kind, support in recorded.items()}
    assert recorded["dir"].supported and host.pool_types_at is not None
    page = admin_client.get(reverse("pools:define", args=[host.pk]) + "?type=dir").content.decode()
    assert "as of the last sync" in page and 'name="target_path"' in page
    Host.objects.filter(pk=host.pk).update(pool_types=None, pool_types_at=None)
    assert sync_host(Host.objects.get(pk=host.pk), pool_names=[]) is not None
    assert Host.objects.get(pk=host.pk).pool_type_support() == recorded


def test_refresh_from_libvirt_starts_the_pools_refresh_job(admin_client, synced, celery_worker):
    pool, _scratch = synced
    live = admin_client.get(reverse("pools:live", args=[pool.pk])).content.decode()
    action = reverse("pools:action", args=[pool.pk, "refresh"])
    assert f'hx-post="{action}"' in live and "Refresh from libvirt" in live
    before = pool.synced_at
    assert admin_client.post(action, HTTP_HX_REQUEST="true").status_code == 200
    job = wait_for_job(Job.objects.get(pool=pool, kind="pool-refresh").pk)
    assert job.state == Job.State.SUCCEEDED, job.error
    pool.refresh_from_db()
    assert pool.synced_at > before
