"""Notifications: notify() rows and its one e-mail task, the bell and the list (own rows only), and the mail."""

from __future__ import annotations

import email
import logging
import socket
import uuid

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification
from notifications.send import notify
from notifications.tasks import send_emails
from tests.conftest import TEST_MAIL_DIR, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


class Rollback(Exception):
    pass


@pytest.fixture
def inactive(django_user_model):
    return django_user_model.objects.create_user("ivo", email="ivo@example.com", password="x-y-z-123456",
                                                 is_active=False)


def _note(user, text="Your request was approved", url="/jobs/", **extra) -> Notification:
    return Notification.objects.create(user=user, text=text, url=url, **extra)


def _unread_on_page(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    start = html.index('data-unread="') + len('data-unread="')
    return html[start:html.index('"', start)]


# -- notify() ---------------------------------------------------------------

def test_notify_makes_a_row_per_active_user_and_queues_one_task_on_commit(member, admin_user, inactive):
    with pytest.raises(Rollback), transaction.atomic():
        callbacks_before = len(connection.run_on_commit)
        rows = notify([member, admin_user, member, inactive], "Pool vm-images is 90% full", url="/pools/3/")
        assert sorted(row.user.username for row in rows) == ["ada", "mia"]
        assert all(row.pk and row.read_at is None and row.url == "/pools/3/" for row in rows)
        assert Notification.objects.filter(user=member).count() == 1
        assert not Notification.objects.filter(user=inactive).exists()
        # Nothing is queued yet: one task, when (and only if) the transaction commits.
        assert len(connection.run_on_commit) - callbacks_before == 1
        raise Rollback
    assert not Notification.objects.exists()


def test_notify_takes_one_user_and_the_package_exports_it(member):
    import notifications

    assert notifications.notify is notify
    with pytest.raises(Rollback), transaction.atomic():
        assert [row.user for row in notify(member, "Hello")] == [member]
        raise Rollback
    assert notify([], "Nobody to tell") == []


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                 "jobs/1/"])
def test_notify_refuses_a_link_outside_the_site(member, url):
    with pytest.raises(ValueError):
        notify([member], "Click me", url=url)
    assert not Notification.objects.exists()


# -- the bell and the list --------------------------------------------------

def test_the_bell_counts_unread_and_drops_after_mark_all_read(member_client, member, admin_user):
    _note(member), _note(member, text="Second"), _note(admin_user)
    _note(member, text="Old news", read_at=timezone.now())
    assert _unread_on_page(member_client, reverse("jobs:list")) == "2"
    bell = member_client.get(reverse("notifications:bell"))
    assert bell.status_code == 200 and 'data-unread="2"' in bell.content.decode()
    assert 'hx-trigger="every 10s' in bell.content.decode()

    response = member_client.post(reverse("notifications:read_all"))
    assert response.status_code == 302 and response["Location"] == reverse("notifications:list")
    assert _unread_on_page(member_client, reverse("jobs:list")) == "0"
    assert Notification.objects.filter(user=admin_user, read_at__isnull=True).count() == 1  # not someone else's


def test_the_count_is_one_query_and_none_for_anonymous(member_client, client):
    with CaptureQueriesContext(connection) as queries:
        member_client.get(reverse("notifications:bell"))
    assert sum("notifications_notification" in q["sql"] for q in queries.captured_queries) == 1
    anonymous = Client()
    with CaptureQueriesContext(connection) as queries:
        page = anonymous.get(reverse("login"))
    assert page.status_code == 200 and "notification-bell" not in page.content.decode()
    assert not any("notifications_notification" in q["sql"] for q in queries.captured_queries)


def test_the_list_shows_only_ones_own_newest_first(member_client, member, admin_user):
    _note(member, text="first for mia")
    _note(admin_user, text="secret for ada")
    _note(member, text="second for mia", url="")
    html = member_client.get(reverse("notifications:list")).content.decode()
    assert "secret for ada" not in html
    assert html.index("second for mia") < html.index("first for mia")
    assert html.count('class="unread"') == 2 and "Mark all read" in html


def test_opening_marks_read_and_goes_to_its_link(member_client, member):
    note = _note(member, url="/jobs/?state=failed")
    response = member_client.post(reverse("notifications:open", args=[note.pk]))
    assert response.status_code == 302 and response["Location"] == "/jobs/?state=failed"
    note.refresh_from_db()
    assert note.read_at is not None


def test_someone_elses_notification_is_404(member_client, admin_user):
    theirs = _note(admin_user)
    assert member_client.post(reverse("notifications:open", args=[theirs.pk])).status_code == 404
    assert member_client.post(reverse("notifications:open", args=[theirs.pk + 1000])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/", "/\\evil.example", "///evil.example",
                                 "javascript:alert(1)", "http:/evil.example"])
def test_opening_never_redirects_off_site(member_client, member, url):
    note = _note(member, url=url)  # a row written past notify()'s check
    response = member_client.post(reverse("notifications:open", args=[note.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("notifications:list")


def test_the_bell_is_login_required_and_changes_nothing(member, client):
    bell = reverse("notifications:bell")
    response = client.get(bell)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    polled = client.get(bell, headers={"HX-Request": "true"})  # a logged-out tab: a plain bell, polling stops
    assert polled.status_code == 286 and "hx-get" not in polled.content.decode()
    assert "data-unread" not in polled.content.decode()
    for url in [reverse("notifications:list"), reverse("notifications:read_all")]:
        assert client.get(url)["Location"].startswith(reverse("login"))

    client.force_login(member)
    assert client.post(bell).status_code == 405
    assert client.get(reverse("notifications:read_all")).status_code == 405
    assert client.get(reverse("notifications:open", args=[_note(member).pk])).status_code == 405


def test_marking_read_needs_the_csrf_token(member):
    note = _note(member)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    assert browser.post(reverse("notifications:read_all")).status_code == 403
    assert browser.post(reverse("notifications:open", args=[note.pk])).status_code == 403
    note.refresh_from_db()
    assert note.read_at is None
    page = browser.get(reverse("notifications:list")).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page


# -- e-mail -------------------------------------------------------------------

def test_the_task_mails_each_user_with_an_address_once(settings, member, admin_user, inactive):
    settings.EMAIL_BACKEND = LOCMEM
    member.email = "mia@example.com"
    member.save()
    rows = [_note(member, text="Volume disk.img is ready", url="/volumes/7/"), _note(admin_user),  # ada: no address
            _note(inactive)]
    assert send_emails([row.pk for row in rows], subject="Request\napproved") == 1
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["mia@example.com"] and sent.from_email == settings.DEFAULT_FROM_EMAIL
    assert sent.subject == "[virtstorage] Request approved"
    assert "Volume disk.img is ready" in sent.body and "/volumes/7/" in sent.body
    mail.outbox.clear()
    assert send_emails([rows[0].pk]) == 1 and mail.outbox[0].subject == "[virtstorage] Volume disk.img is ready"
    assert send_emails([10**9]) == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_mail_server_is_logged_not_raised(settings, member, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 5
    member.email = "mia@example.com"
    member.save()
    note = _note(member)
    with caplog.at_level(logging.ERROR, logger="notifications.tasks"):
        result = send_emails.apply(args=[[note.pk]])  # as a worker runs it: retries and errors would show
    assert result.successful() and result.result == 0
    assert "Could not send 1 notification e-mail(s)" in caplog.text and "127.0.0.1" in caplog.text
    assert Notification.objects.filter(pk=note.pk, read_at__isnull=True).exists()  # still in the app


def _mails_with(marker: str) -> list[email.message.Message]:
    found = []
    for path in TEST_MAIL_DIR.glob("*.log") if TEST_MAIL_DIR.exists() else []:
        for chunk in path.read_text(errors="replace").split("\n" + "-" * 79 + "\n"):
            if marker in chunk:
                found.append(email.message_from_string(chunk.lstrip("\n")))
    return found


def test_the_worker_mails_on_commit(celery_worker, member, admin_user, django_user_model):
    """Through the real queue and worker, whose mail goes to files (tests/conftest.py sets its EMAIL_*)."""
    member.email = "mia@example.com"
    member.save()
    nina = django_user_model.objects.create_user("nina", email="nina@example.com", password="x-y-z-123456")
    marker = uuid.uuid4().hex
    notify([member, admin_user, nina], f"Request {marker} approved", url="/jobs/")
    wait_for(lambda: len(_mails_with(marker)) >= 2, timeout=30,
             message=f"the worker's e-mails in {TEST_MAIL_DIR}\n{celery_worker.log_tail()}")
    messages = _mails_with(marker)
    assert sorted(m["To"] for m in messages) == ["mia@example.com", "nina@example.com"]
    assert all(m["Subject"] == f"[virtstorage] Request {marker} approved" for m in messages)


def test_a_written_text_comes_in_each_recipients_language(celery_worker, member, admin_user, django_user_model):
    """A text given as a function is written for each recipient in the language they chose; without a choice,
    in the language active where notify() runs. The e-mail's subject likewise."""
    from django.utils import translation
    from django.utils.translation import gettext as _

    from accounts.models import Preferences

    Preferences.objects.create(user=member, language="es")
    member.email, admin_user.email = "mia@example.com", "ada@example.com"
    member.save(), admin_user.save()
    marker = uuid.uuid4().hex
    with translation.override("en"):
        rows = notify([member, admin_user], lambda: f"{_('Jobs')} {marker}", subject=lambda: f"{_('Teams')} {marker}",
                      url="/jobs/")
    assert {row.user.username: row.text for row in rows} == {"mia": f"Tareas {marker}", "ada": f"Jobs {marker}"}
    wait_for(lambda: len(_mails_with(marker)) == 2, timeout=30,
             message=f"the worker's e-mails in {TEST_MAIL_DIR}\n{celery_worker.log_tail()}")
    assert {m["To"]: m["Subject"] for m in _mails_with(marker)} == {
        "mia@example.com": f"[virtstorage] Equipos {marker}", "ada@example.com": f"[virtstorage] Teams {marker}"}
