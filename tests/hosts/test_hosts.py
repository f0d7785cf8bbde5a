"""Hosts: add, edit, remove, test the connection and sync, through the views and a real Celery worker."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from hosts.models import Host
from hosts.status import check_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import LIBVIRT_URI, virsh, wait_for, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_adds_host_and_it_gets_synced(admin_client, celery_worker, filled_pool):
    response = admin_client.post(reverse("hosts:add"), {"name": "kvm-local", "uri": LIBVIRT_URI, "enabled": "on"})
    host = Host.objects.get(name="kvm-local")
    assert response.status_code == 302
    job = Job.objects.get(host=host, kind="sync")
    job = wait_for_job(job.pk)
    assert job.state == Job.State.SUCCEEDED, job.error
    host.refresh_from_db()
    assert host.status == Host.Status.ONLINE
    assert host.libvirt_version and host.hostname and host.cpus and host.memory_bytes
    pool = StoragePool.objects.get(host=host, name=filled_pool.name)
    assert pool.volumes.count() == 5


@pytest.mark.parametrize("uri", ["", "not a uri", "qemu:///system<script>", "/etc/passwd"])
def test_bad_uri_is_a_form_error(admin_client, uri):
    response = admin_client.post(reverse("hosts:add"), {"name": "bad", "uri": uri})
    assert response.status_code == 200
    assert "libvirt URI" in response.content.decode() or "required" in response.content.decode()
    assert not Host.objects.filter(name="bad").exists()


def test_duplicate_host_name_is_refused(admin_client, local_host):
    response = admin_client.post(reverse("hosts:add"), {"name": "local", "uri": "test:///default"})
    assert response.status_code == 200 and "already exists" in response.content.decode()


def test_edit_and_disable_host(admin_client, local_host):
    response = admin_client.post(reverse("hosts:edit", args=[local_host.pk]),
                                 {"name": "renamed", "uri": LIBVIRT_URI, "description": "lab"})
    assert response.status_code == 302
    local_host.refresh_from_db()
    assert local_host.name == "renamed" and not local_host.enabled and not local_host.direct_io
    assert "libvirt streams only" in admin_client.get(local_host.get_absolute_url()).content.decode()
    response = admin_client.post(reverse("hosts:edit", args=[local_host.pk]),
                                 {"name": "renamed", "uri": LIBVIRT_URI, "enabled": "on", "direct_io": "on"})
    local_host.refresh_from_db()
    assert response.status_code == 302 and local_host.enabled and local_host.direct_io
    assert "direct file I/O where the host is this machine" in admin_client.get(
        local_host.get_absolute_url()).content.decode()


def test_remove_host_needs_its_name_and_leaves_libvirt_alone(admin_client, synced):
    pool, scratch = synced
    url = reverse("hosts:delete", args=[pool.host_id])
    admin_client.post(url, {"confirm_name": "wrong"})
    assert Host.objects.filter(pk=pool.host_id).exists()
    admin_client.post(url, {"confirm_name": "local"})
    assert not Host.objects.filter(pk=pool.host_id).exists()
    assert not StoragePool.objects.filter(pk=pool.pk).exists()
    assert (scratch.path / "raw-thin.img").exists()  # forgetting a host touches nothing on it


def test_test_connection_reports_facts_through_the_worker(admin_client, celery_worker, local_host):
    response = admin_client.post(reverse("hosts:test", args=[local_host.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Testing the connection" in response.content.decode()
    host = wait_for(lambda: Host.objects.filter(pk=local_host.pk, status=Host.Status.ONLINE).first(),
                    message="the connection test")
    assert host.libvirt_version.startswith(("9.", "10.", "11.", "12."))
    status = admin_client.get(reverse("hosts:status", args=[host.pk]), {"since": "never"}).content.decode()
    assert host.hostname in status and "Testing the connection" not in status


def test_unreachable_host_shows_its_error_on_every_page(member_client, celery_worker):
    host = Host.objects.create(name="dead", uri="qemu+tcp://127.0.0.1:1/system")
    assert check_host(host) is False
    host.refresh_from_db()
    for url in (reverse("dashboard"), reverse("hosts:detail", args=[host.pk])):
        html = member_client.get(url).content.decode()
        assert "unreachable" in html.lower()
        assert host.last_error[:30] in html


def test_sync_job_of_unreachable_host_fails_with_reason(member_client, celery_worker):
    host = Host.objects.create(name="dead", uri="qemu+tcp://127.0.0.1:1/system")
    response = member_client.post(reverse("hosts:sync", args=[host.pk]))
    job = Job.objects.get(host=host)
    assert response["Location"] == job.get_absolute_url()
    job = wait_for_job(job.pk)
    assert job.state == Job.State.FAILED
    assert "unreachable" in job.error


def test_addhost_and_sync_commands(transactional_db, filled_pool, capsys):
    call_command("addhost", "cli-host", LIBVIRT_URI)
    assert "online" in capsys.readouterr().out
    call_command("sync", "cli-host")
    assert "volumes" in capsys.readouterr().out
    assert StoragePool.objects.get(host__name="cli-host", name=filled_pool.name).volumes.count() == 5
    with pytest.raises(Exception, match="libvirt URI"):
        call_command("addhost", "bad", "nonsense")


def test_a_second_host_for_the_same_libvirt_is_pointed_out(admin_client, member_client, local_host):
    """A check records the daemon's host UUID (its capabilities); two hosts with one UUID are one libvirt under two
    URIs (qemu:///session as root, a qemu+tcp URI to the same machine): their pages say so, to admins."""
    assert check_host(local_host)
    local_host.refresh_from_db()
    assert local_host.libvirt_uuid and local_host.libvirt_uuid in virsh("capabilities")
    twin = Host.objects.create(name="same-daemon", uri="qemu+tcp://127.0.0.1/system",
                               libvirt_uuid=local_host.libvirt_uuid)  # as a check of it would record
    page = admin_client.get(local_host.get_absolute_url()).content.decode()
    assert 'id="host-same-libvirt"' in page and "host same-daemon reaches too" in page
    assert "host local reaches too" in admin_client.get(twin.get_absolute_url()).content.decode()
    assert 'id="host-same-libvirt"' not in member_client.get(local_host.get_absolute_url()).content.decode()
    Host.objects.filter(pk=twin.pk).update(libvirt_uuid="00000000-0000-0000-0000-000000000001")
    assert 'id="host-same-libvirt"' not in admin_client.get(local_host.get_absolute_url()).content.decode()
