"""Attempts that a confinement rule refuses are audited (outcome "refused"), with who tried, from where, what and
why, whether they came through a page or the API: a host URI outside the allow-list, a pool directory among system
files, a block device or volume group not set aside, a host file to import from outside the import roots (the
same hook audits an image to import that points outside the pools, and a symlink offered for adoption)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditRecord
from tests.api.conftest import post, token_client

pytestmark = pytest.mark.django_db(transaction=True)


def _refusals() -> list[tuple[str, str, str]]:
    return list(AuditRecord.objects.filter(outcome="refused").order_by("id")
                .values_list("action", "username", "target"))


def test_each_kind_of_confinement_refusal_is_audited(admin_client, admin_user, local_host, synced):
    pool, _scratch = synced
    admin_client.post("/hosts/add/", {"name": "evil", "uri": "qemu+ext:///system?command=/bin/sh"})
    define = f"/pools/define/on/{local_host.pk}/"
    admin_client.post(f"{define}?type=dir", {"type": "dir", "name": "sys", "target_path": "/etc/vms",
                                             "action": "preview"})
    admin_client.post(f"{define}?type=disk", {"type": "disk", "name": "root", "source_device": "/dev/vda",
                                              "source_format": "gpt", "action": "preview"})
    admin_client.post(f"{define}?type=xml", {"type": "xml", "action": "preview", "xml":
                      "<pool type='logical'><name>rootvg</name><source><name>debian-vg</name></source></pool>"})
    admin_client.post(reverse("volumes:image_import", args=[pool.pk]), {"path": "/etc/shadow", "name": "shadow.img"})
    assert post(token_client(admin_user), "/api/hosts/", {"name": "api-evil", "uri": "qemu:///system?socket=/x"}
                ).status_code == 400
    refusals = _refusals()
    assert [(action, user) for action, user, _target in refusals] == [
        ("host.create", "ada"), ("pool.define", "ada"), ("pool.define", "ada"), ("pool.define", "ada"),
        ("volume.import", "ada"), ("host.create", "ada")]
    targets = [target for _action, _user, target in refusals]
    assert targets[:5] == ["qemu+ext:///system?command=/bin/sh", "/etc/vms", "/dev/vda", "rootvg", "/etc/shadow"]
    reasons = list(AuditRecord.objects.filter(outcome="refused").order_by("id").values_list("detail", flat=True))
    assert "/dev/vda is not a block device set aside for pools" in reasons[2]["reason"]
    assert all(record.client_ip == "127.0.0.1" for record in AuditRecord.objects.filter(outcome="refused"))


def test_a_refusal_outside_a_request_is_audited_without_a_user(local_host):
    from hosts.forms import HostForm

    assert not HostForm({"name": "cli", "uri": "qemu+ext:///system?command=/bin/sh"}).is_valid()
    assert _refusals() == [("host.create", "", "qemu+ext:///system?command=/bin/sh")]
