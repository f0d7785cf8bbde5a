"""A user changes their own password on the site: the old one is asked, the new one is checked, other sessions end,
the change is audited (never the password), and the header links the page."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from audit.models import AuditRecord

pytestmark = pytest.mark.django_db(transaction=True)

OLD, NEW = "correct-horse-battery", "a-brand-new-passphrase"


def _client(username: str, password: str) -> Client:
    client = Client()
    assert client.post(reverse("login"), {"username": username, "password": password}).status_code == 302
    return client


def test_a_member_changes_their_password_and_other_sessions_end(member):
    this, other = _client(member.username, OLD), _client(member.username, OLD)
    page = this.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("password_change")}"' in page  # the header's link, on the user's name
    url = reverse("password_change")
    refused = this.post(url, {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW})
    assert refused.status_code == 200 and "Your old password was entered incorrectly" in refused.content.decode()
    too_short = this.post(url, {"old_password": OLD, "new_password1": "short", "new_password2": "short"})
    assert too_short.status_code == 200 and "too short" in too_short.content.decode()
    assert get_user_model().objects.get(pk=member.pk).check_password(OLD)  # nothing changed yet

    response = this.post(url, {"old_password": OLD, "new_password1": NEW, "new_password2": NEW}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert "Your password was changed." in response.content.decode()
    assert this.get(reverse("jobs:list")).status_code == 200  # this session stays
    assert other.get(reverse("jobs:list")).status_code == 302  # the other one ended: to the login page
    assert Client().login(username=member.username, password=NEW)
    record = AuditRecord.objects.get(action="password.change")
    assert record.username == member.username and OLD not in str(record.detail) and NEW not in str(record.detail)


def test_the_page_needs_a_login(client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
