"""A volume a VM uses: delete, wipe, shrink and a replacing upload are refused at the form (from the inventory)
and again in the job (from libvirt), unless an admin forces it, and the force is in the audit log; growing is
not refused; the pool's table and the request page name the VMs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory.sync import sync_host
from jobs.models import Job

from .test_volume_ops import run_op, volume_row

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def known_users(synced, domain_using):
    """The VM of domain_using as the inventory knows it (synced after it was defined)."""
    pool, scratch = synced
    sync_host(pool.host, pool_names=[pool.name])
    return pool, scratch, domain_using


@pytest.mark.parametrize(("name", "url", "data"), [
    ("raw-thin.img", "volumes:delete", {"confirm": "raw-thin.img"}),
    ("qcow2-thin.qcow2", "volumes:wipe", {"algorithm": "zero", "confirm": "qcow2-thin.qcow2"}),
    ("qcow2-thin.qcow2", "volumes:resize", {"capacity": "512M", "confirm_shrink": "qcow2-thin.qcow2"}),
])
def test_the_form_refuses_what_a_vm_uses_and_starts_no_job(client, member, known_users, name, url, data):
    pool, _, vm = known_users
    client.force_login(member)
    volume = volume_row(pool, name)
    response = client.post(reverse(url, args=[volume.pk]), {**data, "force": "on"})  # force is not theirs
    page = response.content.decode()
    assert response.status_code == 400, page[-2000:]
    action = {"volumes:delete": "delete", "volumes:wipe": "wipe", "volumes:resize": "shrink"}[url]
    assert f"Refused to {action} “{name}”: it is a disk of the virtual machine(s) {vm}" in page
    assert not Job.objects.exists()


def test_growing_a_vms_disk_is_not_refused(client, member, celery_worker, known_users):
    pool, scratch, _ = known_users
    client.force_login(member)
    volume = volume_row(pool, "qcow2-thin.qcow2")
    job = run_op(client, reverse("volumes:resize", args=[volume.pk]), {"capacity": "2G"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert scratch.vol_info("qcow2-thin.qcow2")["Capacity"] == f"{2 * 1024**3} bytes"


def test_an_admin_forces_a_shrink_and_the_force_is_recorded(client, admin_user, celery_worker, known_users):
    from audit.models import AuditRecord

    pool, scratch, vm = known_users
    client.force_login(admin_user)
    volume = volume_row(pool, "qcow2-thin.qcow2")
    url = reverse("volumes:resize", args=[volume.pk])
    assert "Shrink even if a virtual machine uses it" in client.get(url).content.decode()
    refused = client.post(url, {"capacity": "512M", "confirm_shrink": "qcow2-thin.qcow2"})
    assert refused.status_code == 400 and f"virtual machine(s) {vm}" in refused.content.decode()
    job = run_op(client, url, {"capacity": "512M", "confirm_shrink": "qcow2-thin.qcow2", "force": "on"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert scratch.vol_info("qcow2-thin.qcow2")["Capacity"] == f"{512 * 1024**2} bytes"
    assert f"Used by virtual machine(s) {vm}; going ahead because an admin forced it" in job.log
    started = AuditRecord.objects.get(action="volume.resize", outcome="started", detail__job=job.pk)
    assert started.detail["params"]["force"] is True and started.username == admin_user.username


def test_the_job_refuses_a_shrink_the_inventory_did_not_know_about(client, member, celery_worker, synced,
                                                                   domain_using):
    """Defined after the last sync: the form lets it through, the job asks libvirt and refuses."""
    pool, scratch = synced
    client.force_login(member)
    volume = volume_row(pool, "qcow2-thin.qcow2")
    job = run_op(client, reverse("volumes:resize", args=[volume.pk]),
                 {"capacity": "512M", "confirm_shrink": "qcow2-thin.qcow2"})
    assert job.state == Job.State.FAILED and f"Refused to shrink “qcow2-thin.qcow2”: it is a disk of the " \
        f"virtual machine(s) {domain_using}" in job.error, job.error
    assert scratch.vol_info("qcow2-thin.qcow2")["Capacity"] == f"{1024**3} bytes"


def test_the_pool_table_names_the_vms(member_client, known_users):
    pool, _, vm = known_users
    table = member_client.get(reverse("pools:volumes", args=[pool.pk])).content.decode()
    assert table.count(f">in use by {vm}</span>") == 2
