"""The Accounts page: an admin makes an account (its password shown once), gives one a new password, deactivates
and reactivates one; each is audited without the password; nobody else may."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.roles import is_admin, is_member
from audit.models import AuditRecord
from tests.provisioning.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _handed(response) -> str:
    """The password the page shows once."""
    return re.search(r'id="handed-password".*?<code>([^<]+)</code>', response.content.decode(), re.S).group(1)


def _logs_in(username: str, password: str) -> bool:
    return Client().post(reverse("login"), {"username": username, "password": password}).status_code == 302


def test_an_admin_makes_a_member_of_a_team_who_logs_in_with_the_password_shown_once():
    ada, team = make_user("ada", admin=True), Team.objects.create(name="blue")
    admin = _client(ada)
    page = admin.get(reverse("people")).content.decode()
    assert 'data-account="ada"' in page and f'href="{reverse("people")}"' in page  # listed; the header links it
    response = admin.post(reverse("people"), {"username": "nina", "site_role": "member", "team": team.pk,
                                              "team_role": "operator"})
    assert response.status_code == 200
    password = _handed(response)
    nina = get_user_model().objects.get(username="nina")
    assert is_member(nina) and not is_admin(nina)
    assert Membership.objects.get(user=nina, team=team).role == "operator"
    assert _logs_in("nina", password)
    assert password not in admin.get(reverse("people")).content.decode()  # once
    record = AuditRecord.objects.get(action="account.create")
    assert record.username == "ada" and record.target_id == str(nina.pk) and password not in str(record.detail)
    assert record.detail == {"role": "member", "team": "blue", "team_role": "operator"}

    admin.post(reverse("people"), {"username": "eve", "site_role": "admin", "team_role": "member"})
    assert is_admin(get_user_model().objects.get(username="eve"))
    rows = {name: row for name, row in re.findall(r'data-account="([^"]+)"[^>]*>(.*?)</tr>',
                                                   admin.get(reverse("people")).content.decode(), re.S)}
    assert "<td>admin</td>" in rows["eve"] and "<td>member</td>" in rows["nina"]  # each account's site-wide role


@pytest.mark.parametrize(("username", "message"), [
    ("NINA", "There is already an account named NINA."), ("bad name!", "Enter a valid username"), ("", "required")])
def test_a_taken_or_bad_username_is_refused_and_nothing_is_made(username, message):
    make_user("nina")
    admin = _client(make_user("ada", admin=True))
    response = admin.post(reverse("people"), {"username": username, "site_role": "member", "team_role": "member"})
    assert response.status_code == 400 and message in unescape(response.content.decode())
    assert get_user_model().objects.count() == 2


def test_a_new_password_replaces_the_old_one_and_ends_their_sessions():
    nina, admin = make_user("nina"), _client(make_user("ada", admin=True))
    session = Client()
    assert session.post(reverse("login"), {"username": "nina", "password": PASSWORD}).status_code == 302
    password = _handed(admin.post(reverse("people_password", args=[nina.pk])))
    assert _logs_in("nina", password) and not _logs_in("nina", PASSWORD)
    assert session.get(reverse("jobs:list")).status_code == 302  # logged out: to the login page
    assert AuditRecord.objects.filter(action="account.password_reset", target_id=str(nina.pk)).exists()


def test_a_deactivated_account_cannot_log_in_until_reactivated_and_an_admin_cannot_deactivate_themselves():
    nina, ada = make_user("nina"), make_user("ada", admin=True)
    admin, session = _client(ada), _client(nina)
    admin.post(reverse("people_active", args=[nina.pk]), {"active": "0"})
    assert not _logs_in("nina", PASSWORD) and session.get(reverse("jobs:list")).status_code == 302
    admin.post(reverse("people_active", args=[nina.pk]), {"active": "1"})
    assert _logs_in("nina", PASSWORD)
    response = admin.post(reverse("people_active", args=[ada.pk]), {"active": "0"}, follow=True)
    assert "You cannot deactivate your own account." in response.content.decode()
    assert get_user_model().objects.get(pk=ada.pk).is_active
    assert list(AuditRecord.objects.filter(action__startswith="account.").values_list("action", flat=True)
                .order_by("id")) == ["account.deactivate", "account.reactivate"]


def test_only_admins_see_or_change_accounts():
    nina, member = make_user("nina"), _client(make_user("rita"))
    assert member.get(reverse("people")).status_code == 403
    assert member.post(reverse("people"), {"username": "x", "site_role": "admin", "team_role": "member"}
                       ).status_code == 403
    assert member.post(reverse("people_password", args=[nina.pk])).status_code == 403
    assert member.post(reverse("people_active", args=[nina.pk]), {"active": "0"}).status_code == 403
    assert get_user_model().objects.filter(username="x").count() == 0 and get_user_model().objects.get(
        pk=nina.pk).is_active and _logs_in("nina", PASSWORD)


def test_the_accounts_are_searched_by_name_or_team_a_page_at_a_time():
    from accounts.people_views import ACCOUNTS_PER_PAGE

    admin = _client(make_user("ada", admin=True))
    blue = Team.objects.create(name="blue-team")
    accounts = get_user_model()
    accounts.objects.bulk_create(accounts(username=f"user{i:03d}") for i in range(ACCOUNTS_PER_PAGE + 9))
    for username in ("user003", "user058"):
        Membership.objects.create(user=get_user_model().objects.get(username=username), team=blue, role="member")

    def listed(page: str) -> list[str]:
        return re.findall(r'data-account="([^"]+)"', page)

    first = admin.get(reverse("people")).content.decode()
    assert listed(first) == ["ada"] + [f"user{i:03d}" for i in range(ACCOUNTS_PER_PAGE - 1)]
    assert f"1–{ACCOUNTS_PER_PAGE} of {ACCOUNTS_PER_PAGE + 10}" in first and 'href="?page=2">Next ›' in first
    second = admin.get(reverse("people"), {"page": 2}).content.decode()
    assert listed(second) == [f"user{i:03d}" for i in range(ACCOUNTS_PER_PAGE - 1, ACCOUNTS_PER_PAGE + 9)]
    assert listed(admin.get(reverse("people"), {"q": "USER05"}).content.decode()) == [
        f"user{i:03d}" for i in range(50, 59)]  # any case, any part of the name
    by_team = admin.get(reverse("people"), {"q": "blue"}).content.decode()
    assert listed(by_team) == ["user003", "user058"] and 'value="blue"' in by_team
    nothing = admin.get(reverse("people"), {"q": "zzz"}).content.decode()
    assert listed(nothing) == [] and "No account's name or team holds “zzz”." in unescape(nothing)
    assert listed(admin.get(reverse("people"), {"q": "user0", "page": 2}).content.decode()) == [
        f"user{i:03d}" for i in range(ACCOUNTS_PER_PAGE, ACCOUNTS_PER_PAGE + 9)]
    assert 'href="?q=user0&amp;page=1">‹ Previous' in admin.get(reverse("people"), {"q": "user0", "page": 2}
                                                                ).content.decode()  # the search kept


def test_the_header_names_the_readers_role_an_operator_too():
    team = Team.objects.create(name="blue")
    roles = {"rita": make_user("rita", team), "otto": make_user("otto", team, "operator"),
             "ada": make_user("ada", admin=True)}
    shown = {name: re.search(r'<span class="role">([^<]+)</span>', _client(user).get(reverse("jobs:list"))
                             .content.decode()).group(1) for name, user in roles.items()}
    assert shown == {"rita": "member", "otto": "operator", "ada": "admin"}  # otto had read "member"
