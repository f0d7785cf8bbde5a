"""The audit log is append-only: no model call, queryset call, view or admin page changes or removes a record."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit.log import record
from audit.models import AppendOnly, AuditRecord

pytestmark = pytest.mark.django_db(transaction=True)


def _snapshot() -> list[tuple]:
    return list(AuditRecord.objects.order_by("pk").values_list())


@pytest.fixture
def records(admin_user, member) -> list[AuditRecord]:
    return [record("host.create", user=admin_user, target="host kvm1", target_type="host", target_id="1"),
            record("volume.delete", user=member, target="volume a.img", outcome="refused", detail={"why": "busy"})]


def test_a_saved_record_cannot_be_saved_again_or_deleted(records):
    first = AuditRecord.objects.get(pk=records[0].pk)
    first.action = "host.delete"
    with pytest.raises(AppendOnly):
        first.save()
    with pytest.raises(AppendOnly):
        first.save(update_fields=["action"])
    with pytest.raises(AppendOnly):
        first.delete()
    with pytest.raises(AppendOnly):
        records[1].save()  # the instance create() returned is saved too
    assert AuditRecord.objects.get(pk=first.pk).action == "host.create"


def test_querysets_refuse_update_and_delete(records):
    before = _snapshot()
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(action="host.create").update(action="changed")
    with pytest.raises(AppendOnly):
        AuditRecord.objects.update(outcome="ok")
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(pk=records[0].pk).delete()
    with pytest.raises(AppendOnly):
        AuditRecord.objects.all().delete()
    with pytest.raises(AppendOnly):
        AuditRecord.objects.bulk_update(records, ["action"])
    with pytest.raises(AppendOnly):
        AuditRecord.objects.update_or_create(pk=records[0].pk, defaults={"action": "changed"})
    assert _snapshot() == before


def test_a_deleted_user_leaves_the_records_with_the_name(records, member):
    get_user_model().objects.filter(pk=member.pk).delete()  # SET NULL through Django's base manager
    kept = AuditRecord.objects.get(pk=records[1].pk)
    assert kept.user is None and kept.username == "mia" and kept.action == "volume.delete"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", ["audit:list", "audit:export"])
def test_no_url_changes_a_record(client, admin_user, member, records, method, url):
    client.force_login(admin_user)
    before = _snapshot()
    for who in (admin_user, member):
        client.force_login(who)
        ours = _snapshot()
        response = getattr(client, method)(reverse(url), {"action": "x"}, content_type="application/json")
        assert response.status_code in (403, 405), response.status_code
        if who == admin_user:
            assert response.status_code == 405 and set(response["Allow"].split(", ")) == {"GET", "HEAD"}
        assert _snapshot() == ours  # nothing written, changed or removed (logins aside, made before)
    assert [row for row in _snapshot() if row[0] in {r[0] for r in before}] == before


def test_the_django_admin_shows_records_read_only(client, records):
    superuser = get_user_model().objects.create_superuser("root", password="correct-horse-battery")
    client.force_login(superuser)
    before = _snapshot()
    pk = records[0].pk
    assert client.get(reverse("admin:audit_auditrecord_changelist")).status_code == 200
    page = client.get(reverse("admin:audit_auditrecord_change", args=[pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content  # a view, not a form
    assert client.get(reverse("admin:audit_auditrecord_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditrecord_add"), {"action": "forged"}).status_code == 403
    assert client.post(reverse("admin:audit_auditrecord_change", args=[pk]), {"action": "x"}).status_code == 403
    assert client.post(reverse("admin:audit_auditrecord_delete", args=[pk]), {"post": "yes"}).status_code == 403
    response = client.post(reverse("admin:audit_auditrecord_changelist"),
                           {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
    assert response.status_code in (200, 302, 403)
    assert _snapshot() == before
