"""Django's admin changes hosts the way the app's pages do (through hosts/operations.py: audited, a removal
locked against a running sync), and shows the inventory, which mirrors libvirt, read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit.models import AuditRecord
from hosts.models import Host
from tests.conftest import LIBVIRT_URI

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="correct-horse-battery"))
    return client


def _actions(host_pk: int) -> list[str]:
    return list(AuditRecord.objects.filter(target_type="host", target_id=str(host_pk)).order_by("id")
                .values_list("action", flat=True))


@pytest.mark.parametrize("removal", ["one", "selected"])
def test_a_host_added_changed_and_removed_in_the_django_admin_is_audited(root_client, removal):
    response = root_client.post(reverse("admin:hosts_host_add"), {"name": "kvm-admin", "uri": LIBVIRT_URI,
                                                                  "description": "", "enabled": "on",
                                                                  "direct_io": "on", "queue": ""})
    assert response.status_code == 302, response.content.decode()[-3000:]
    host = Host.objects.get(name="kvm-admin")
    response = root_client.post(reverse("admin:hosts_host_change", args=[host.pk]),
                                {"name": "kvm-renamed", "uri": LIBVIRT_URI, "description": "", "queue": ""})
    assert response.status_code == 302, response.content.decode()[-3000:]
    if removal == "one":
        response = root_client.post(reverse("admin:hosts_host_delete", args=[host.pk]), {"post": "yes"})
    else:
        response = root_client.post(reverse("admin:hosts_host_changelist"),
                                    {"action": "delete_selected", "_selected_action": [host.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Host.objects.filter(pk=host.pk).exists()
    assert _actions(host.pk) == ["host.create", "host.sync", "host.edit", "host.delete"]
    edited = AuditRecord.objects.get(action="host.edit", target_id=str(host.pk))
    assert edited.detail["name"] == {"from": "kvm-admin", "to": "kvm-renamed"} and edited.user.username == "root"


def test_the_django_admin_shows_pools_and_volumes_read_only(root_client, synced):
    pool, _ = synced
    volume = pool.volumes.get(name="overlay.qcow2")
    for model, row in (("pools_storagepool", pool), ("volumes_volume", volume)):
        assert root_client.get(reverse(f"admin:{model}_changelist")).status_code == 200
        page = root_client.get(reverse(f"admin:{model}_change", args=[row.pk]))
        assert page.status_code == 200 and b'name="_save"' not in page.content  # a view, not a form
        assert root_client.get(reverse(f"admin:{model}_add")).status_code == 403
        assert root_client.post(reverse(f"admin:{model}_change", args=[row.pk]), {"name": "x"}).status_code == 403
        assert root_client.post(reverse(f"admin:{model}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
        row.refresh_from_db()
        assert row.name != "x"
