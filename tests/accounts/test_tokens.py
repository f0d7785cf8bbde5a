"""Personal API tokens: made on the profile page (shown once, stored hashed), used, noted, revoked, expired.
A refused token gets 401 and changes nothing, in the REST API and on the upload and job endpoints."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from audit.models import AuditRecord
from tests.api.conftest import token_client
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)


def _make_on_page(client: Client, name: str, days: str = "") -> str:
    page = client.post("/accounts/tokens/", {"name": name, "expires_in_days": days})
    assert page.status_code == 200
    found = re.search(r'<code id="token-secret">(vst_[^<]+)</code>', page.content.decode())
    assert found, page.content.decode()
    return found[1]


def test_the_page_shows_a_new_token_once_and_keeps_only_its_hash(member_client, member) -> None:
    raw = _make_on_page(member_client, "ci pipeline", days="30")
    token = ApiToken.objects.get(user=member)
    assert token.name == "ci pipeline" and raw.startswith(f"vst_{token.prefix}_")
    assert token.secret_sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ApiToken.objects.values_list()))  # the secret itself is nowhere in the table
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    listing = member_client.get("/accounts/tokens/").content.decode()
    assert "ci pipeline" in listing and raw not in listing and "never" in listing  # never used yet
    record = AuditRecord.objects.get(action="token.create")
    assert record.username == "mia" and token.prefix in record.target


def test_use_is_noted_at_most_once_a_minute(member) -> None:
    token, raw = tokens.issue(member, "cli")
    user, used = tokens.authenticate(raw)
    assert (user, used) == (member, token) and used.last_used_at is not None
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first == used.last_used_at
    tokens.authenticate(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # not written again within the minute
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    tokens.authenticate(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


@pytest.mark.parametrize("raw", ["", "Bearer", "vst_", "vst_nope_nope", "something-else"])
def test_malformed_and_unknown_tokens_are_refused(member, raw) -> None:
    tokens.issue(member, "real")
    with pytest.raises(tokens.TokenRefused):
        tokens.authenticate(raw)


def test_a_wrong_secret_with_a_real_prefix_is_refused(member) -> None:
    token, raw = tokens.issue(member, "real")
    with pytest.raises(tokens.TokenRefused, match="Unknown"):
        tokens.authenticate(raw[:-2] + ("AA" if not raw.endswith("AA") else "BB"))


def test_revoked_token_gets_401_and_changes_nothing(member_client, member, synced) -> None:
    pool, _scratch = synced
    raw = _make_on_page(member_client, "to revoke")
    api = token_client(raw)
    assert api.get("/api/volumes/").status_code == 200
    token = ApiToken.objects.get(user=member)
    assert member_client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert AuditRecord.objects.filter(action="token.revoke", target_id=str(token.pk)).exists()
    before = sorted(map(repr, Upload.objects.values_list())), sorted(map(repr, AuditRecord.objects.values_list()))
    refused = [
        api.get("/api/volumes/"),
        api.post(f"/api/pools/{pool.pk}/volumes/", {"name": "x.img", "capacity": "1M", "format": "raw",
                                                      "provisioning": "off"}, content_type="application/json"),
        api.post("/volumes/uploads/", {"pool": pool.pk, "volume": "up.img", "mode": "new", "size": 1024},
                 content_type="application/json"),
        api.get("/jobs/1/", HTTP_ACCEPT="application/json"),
    ]
    for response in refused:
        assert response.status_code == 401, response.content
        assert response.json()["code"] == "authentication_failed" and "revoked" in response.json()["message"]
    assert (sorted(map(repr, Upload.objects.values_list())),
            sorted(map(repr, AuditRecord.objects.values_list()))) == before


def test_an_expired_token_gets_401(member) -> None:
    token, raw = tokens.issue(member, "short", expires_at=timezone.now() + timedelta(seconds=60))
    api = token_client(raw)
    assert api.get("/api/jobs/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.get("/api/jobs/")
    assert response.status_code == 401 and "expired" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_disabled_account_token_is_refused(member) -> None:
    _token, raw = tokens.issue(member, "soon disabled")
    member.is_active = False
    member.save()
    assert token_client(raw).get("/api/hosts/").status_code == 401


def test_only_the_owner_revokes_a_token(member, admin_user) -> None:
    token, raw = tokens.issue(member, "mine")
    other = Client()
    other.force_login(admin_user)
    assert other.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert token_client(raw).get("/api/hosts/").status_code == 200


def test_token_requests_need_no_csrf_token_and_sessions_still_do(member, synced) -> None:
    """A browser's session must send the CSRF token; a script's bearer token does not need one."""
    pool, _scratch = synced
    body = {"pool": pool.pk, "volume": "csrf.img", "mode": "new", "size": 4096}
    session = Client(enforce_csrf_checks=True)
    session.force_login(member)
    assert session.post("/volumes/uploads/", body, content_type="application/json").status_code == 403
    assert session.post(f"/api/pools/{pool.pk}/volumes/", {"name": "s.img"},
                        content_type="application/json").status_code == 403
    assert not Upload.objects.exists()
    created = token_client(member).post("/volumes/uploads/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert Upload.objects.get().created_by == member


def test_a_bearer_header_does_not_log_into_pages(member) -> None:
    """Only the API and the transfer and job endpoints take tokens: a page still wants a login."""
    page = token_client(member).get("/")
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
