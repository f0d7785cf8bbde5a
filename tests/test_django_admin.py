"""Django's admin changes hosts the way the app's pages do (through hosts/operations.py: audited, a removal
locked against a running sync), and shows read-only what only the app writes: the inventory, which mirrors
libvirt, jobs and provisioning requests (the audit log's own test is tests/audit/test_append_only.py)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from audit.models import AuditRecord
from hosts.models import Host
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from provisioning.models import ProvisioningRequest
from tests.conftest import LIBVIRT_URI, wait_for_job
from tests.provisioning.conftest import PASSWORD, build_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="correct-horse-battery"))
    return client


def _actions(host_pk: int) -> list[str]:
    return list(AuditRecord.objects.filter(target_type="host", target_id=str(host_pk)).order_by("id")
                .values_list("action", flat=True))


@pytest.mark.parametrize("removal", ["one", "selected"])
def test_a_host_added_changed_and_removed_in_the_django_admin_is_audited(root_client, scratch_pool, celery_worker,
                                                                       removal):
    response = root_client.post(reverse("admin:hosts_host_add"), {"name": "kvm-admin", "uri": LIBVIRT_URI,
                                                                  "description": "", "enabled": "on",
                                                                  "direct_io": "on", "queue": ""})
    assert response.status_code == 302, response.content.decode()[-3000:]
    host = Host.objects.get(name="kvm-admin")
    # The first sync's "ok" record is written by the worker whenever it ends: waited for, its place is fixed.
    assert wait_for_job(Job.objects.get(host=host, kind="sync").pk).state == Job.State.SUCCEEDED
    response = root_client.post(reverse("admin:hosts_host_change", args=[host.pk]),
                                {"name": "kvm-renamed", "uri": LIBVIRT_URI, "description": "", "queue": ""})
    assert response.status_code == 302, response.content.decode()[-3000:]
    sync_host(host, pool_names=[scratch_pool.name])  # its pools go with it, though their admin is read-only
    assert StoragePool.objects.filter(host=host).exists()
    if removal == "one":
        response = root_client.post(reverse("admin:hosts_host_delete", args=[host.pk]), {"post": "yes"})
    else:
        response = root_client.post(reverse("admin:hosts_host_changelist"),
                                    {"action": "delete_selected", "_selected_action": [host.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Host.objects.filter(pk=host.pk).exists() and not StoragePool.objects.filter(host_id=host.pk).exists()
    assert _actions(host.pk) == ["host.create", "host.sync", "host.sync", "host.edit", "host.delete"]
    edited = AuditRecord.objects.get(action="host.edit", target_id=str(host.pk))
    assert edited.detail["name"] == {"from": "kvm-admin", "to": "kvm-renamed"} and edited.user.username == "root"


def test_the_django_admin_shows_the_inventory_jobs_and_requests_read_only(root_client, synced):
    pool, _ = synced
    world = build_world(synced)
    req = ProvisioningRequest.objects.create(pool=pool, team=world.team, requested_by=world.rita, name="r.qcow2",
                                             capacity=2**20, format="qcow2", purpose="admin view")
    job = Job.objects.create(kind="sync", host=pool.host)
    rows = {"pools_storagepool": pool, "volumes_volume": pool.volumes.get(name="overlay.qcow2"),
            "jobs_job": job, "provisioning_provisioningrequest": req}
    for model, row in rows.items():
        before = model_to_dict(row)
        assert root_client.get(reverse(f"admin:{model}_changelist")).status_code == 200, model
        page = root_client.get(reverse(f"admin:{model}_change", args=[row.pk]))
        assert page.status_code == 200 and b'name="_save"' not in page.content, model  # a view, not a form
        assert root_client.get(reverse(f"admin:{model}_add")).status_code == 403, model
        assert root_client.post(reverse(f"admin:{model}_change", args=[row.pk]), {"name": "x"}).status_code == 403
        assert root_client.post(reverse(f"admin:{model}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
        row.refresh_from_db()
        assert model_to_dict(row) == before, model


def test_every_page_of_the_django_admin_renders(root_client, synced):
    """Each registered model's list, add and change pages, with a row of each, as the superuser: the form
    renderer must find the admin's and auth's own widget templates too (a user's change page once failed)."""
    pool, _ = synced
    world = build_world(synced)
    ProvisioningRequest.objects.create(pool=pool, team=world.team, requested_by=world.rita, name="r.qcow2",
                                       capacity=2**20, format="qcow2", purpose="admin pages")
    Job.objects.create(kind="sync", host=pool.host)
    Group.objects.create(name="auditors")
    visitor = Client()  # a failed login and a good one: the throttle's three kinds of rows, and an audit record
    visitor.post(reverse("login"), {"username": "otto", "password": "wrong"})  # rita's success would reset hers
    assert visitor.post(reverse("login"), {"username": "rita", "password": PASSWORD}).status_code == 302
    for model in admin.site._registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"no {model._meta.label} row to open"
        for url in (reverse(f"{name}_changelist"), reverse(f"{name}_add"), reverse(f"{name}_change", args=[row.pk])):
            status = root_client.get(url).status_code
            assert status in (200, 403), f"{url}: {status}"  # 403: a read-only model has no add page
        assert root_client.get(reverse(f"{name}_change", args=[row.pk])).status_code == 200, model._meta.label
    assert root_client.get("/favicon.ico").url.endswith("/img/favicon.svg")  # its pages name no icon: the site's
    # An admin sets a member's password there (the form renders auth's own widgets), and it works.
    url = reverse("admin:auth_user_password_change", args=[world.rita.pk])
    assert root_client.get(url).status_code == 200
    response = root_client.post(url, {"usable_password": "true", "password1": "a-new-long-passphrase",
                                      "password2": "a-new-long-passphrase"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Client().login(username="rita", password="a-new-long-passphrase")


def test_who_may_do_what_changed_in_the_django_admin_is_audited(root_client):
    """An account's groups and its superuser, staff and active flags, changed in Django's own admin (not through the
    app's pages, which audit themselves), are recorded with the admin who did it; a login's save is not."""
    from accounts.roles import MEMBER, grant

    nina = get_user_model().objects.create_user("nina", password=PASSWORD)
    grant(nina, MEMBER)  # not through the Django admin: not recorded here
    admins = Group.objects.get_or_create(name="admin")[0]
    url = reverse("admin:auth_user_change", args=[nina.pk])
    form = root_client.get(url).context["adminform"].form
    data = {**{k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list | tuple)},
            "username": "nina", "is_active": "on", "is_staff": "on", "is_superuser": "on",
            "groups": [admins.pk, *nina.groups.values_list("pk", flat=True)], "date_joined_0": "2026-12-05",
            "date_joined_1": "10:00:00", "initial-date_joined_0": "2026-12-05", "initial-date_joined_1": "10:00:00"}
    data.pop("password", None)
    data.pop("last_login", None)
    response = root_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Client().login(username="nina", password=PASSWORD)  # a login saves the account: nothing recorded
    records = list(AuditRecord.objects.filter(action="account.admin_change").order_by("id").values_list(
        "username", "detail"))
    assert records == [("root", {"is_staff": True, "is_superuser": True}), ("root", {"groups_added": ["admin"]})]
