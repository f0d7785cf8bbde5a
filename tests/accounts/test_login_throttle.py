"""Login throttling (django-axes): through Django's test client and through the real ASGI server.

Failures count per user name and, separately, per client address; at the limit even the right
password is refused, with a page that says why, until the cool-off has passed. A success forgets
its own failures. Every failure is recorded (user name, address, time) for an audit.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from accounts.throttle import client_ip

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"  # the conftest users'
LOCKED = "Too many failed logins for this account or address; try again in"


def post_login(client, username: str, password: str, address: str = "10.0.0.1", **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked(response) -> None:
    assert response.status_code == 429, response.status_code
    page = response.content.decode()
    assert LOCKED in page, page
    assert 'name="password"' in page  # the login page itself, not a bare message


def test_thirty_wrong_passwords_lock_the_right_one_out_until_the_cool_off_passed(client, member, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    for _ in range(30):
        response = post_login(client, "mia", "wrong-password")
        assert response.status_code in (200, 429) and not logged_in(client)
    response = post_login(client, "mia", PASSWORD)
    assert_locked(response)
    assert "try again in 1 minute." in response.content.decode()
    assert not logged_in(client)
    time.sleep(2.5)  # the cool-off passes
    response = post_login(client, "mia", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    assert logged_in(client)


def test_the_limit_and_the_message_follow_the_settings(client, member, settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for attempt in range(1, 5):
        response = post_login(client, "mia", "wrong-password")
        assert response.status_code == 200, attempt  # the form again, with its usual error
        assert "Please enter a correct username and password" in response.content.decode()
    assert_locked(post_login(client, "mia", "wrong-password"))  # the 5th failure locks
    response = post_login(client, "mia", PASSWORD)
    assert_locked(response)
    assert "try again in 15 minutes." in response.content.decode()
    assert 'value="mia"' in response.content.decode()  # the user name typed is kept


def test_a_success_resets_the_failure_count(client, member):
    for _ in range(2):
        for _ in range(4):
            post_login(client, "mia", "wrong-password")
        response = post_login(client, "mia", PASSWORD)
        assert response.status_code == 302 and logged_in(client)  # 8 failures in all, never 5 in a row
        client.post(reverse("logout"))
        assert not logged_in(client)
    assert not AccessAttempt.objects.exists()


def test_one_address_trying_many_user_names_is_locked_out(client, member):
    for i in range(5):
        post_login(client, f"guess-{i}", "wrong-password", address="10.6.6.6")
    assert_locked(post_login(client, "mia", PASSWORD, address="10.6.6.6"))  # a right password, a locked address
    assert not logged_in(client)
    response = post_login(client, "mia", PASSWORD, address="10.0.0.2")  # mia herself, from elsewhere
    assert response.status_code == 302 and logged_in(client)


def test_one_user_name_tried_from_many_addresses_is_locked_out(client, member):
    for i in range(5):
        post_login(client, "mia", "wrong-password", address=f"10.7.0.{i + 1}")
    assert_locked(post_login(client, "mia", PASSWORD, address="10.0.0.2"))
    assert not logged_in(client)


def test_a_login_of_ones_own_does_not_wipe_the_failures_against_others(client, member, admin_user):
    """An attacker with an account (ada) guesses at mia's password and logs in as ada in between."""
    for _ in range(4):
        post_login(client, "mia", "wrong-password", address="10.9.9.9")
    assert post_login(client, "ada", PASSWORD, address="10.9.9.9").status_code == 302
    client.post(reverse("logout"))
    assert_locked(post_login(client, "mia", "wrong-password", address="10.9.9.9"))  # the 5th guess still counts
    assert_locked(post_login(client, "mia", PASSWORD, address="10.0.0.2"))  # so mia waits for the cool-off


def test_x_forwarded_for_is_ignored_unless_behind_a_proxy(client, member, settings):
    settings.BEHIND_PROXY = False
    for i in range(5):  # each claims another address; all come from 10.5.5.5
        post_login(client, f"guess-{i}", "wrong", address="10.5.5.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{i + 1}")
    assert_locked(post_login(client, "mia", PASSWORD, address="10.5.5.5", HTTP_X_FORWARDED_FOR="192.0.2.99"))
    assert set(AccessFailureLog.objects.values_list("ip_address", flat=True)) == {"10.5.5.5"}


def test_behind_a_proxy_the_client_is_the_address_the_proxy_added(client, member, settings):
    settings.BEHIND_PROXY = True
    factory = RequestFactory()

    def ip(forwarded: str | None) -> str | None:
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return client_ip(factory.get("/", REMOTE_ADDR="127.0.0.1", **extra))

    assert ip("203.0.113.7") == "203.0.113.7"
    assert ip("6.6.6.6, 203.0.113.7") == "203.0.113.7"  # the left entries are what the client sent
    assert ip("2001:db8::1") == "2001:db8::1"
    assert ip("not-an-address") == "127.0.0.1" and ip(None) == "127.0.0.1" and ip("") == "127.0.0.1"
    for i in range(5):  # one proxy (127.0.0.1) in front of many clients: only the client is locked out
        post_login(client, f"guess-{i}", "wrong", address="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    assert_locked(post_login(client, "mia", PASSWORD, address="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9"))
    response = post_login(client, "mia", PASSWORD, address="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.10")
    assert response.status_code == 302 and logged_in(client)
    settings.BEHIND_PROXY = False
    assert ip("203.0.113.7") == "127.0.0.1"


def test_failed_logins_are_recorded_with_user_name_address_and_time(client, member):
    before = time.time()
    post_login(client, "mia", "wrong-password", address="10.1.2.3")
    post_login(client, "nobody", "wrong-password", address="10.1.2.4")
    rows = list(AccessFailureLog.objects.order_by("attempt_time").values("username", "ip_address", "attempt_time"))
    assert [(r["username"], r["ip_address"]) for r in rows] == [("mia", "10.1.2.3"), ("nobody", "10.1.2.4")]
    assert all(before - 1 <= r["attempt_time"].timestamp() <= time.time() + 1 for r in rows)
    assert "wrong-password" not in str(list(AccessAttempt.objects.values_list("post_data", flat=True)))


def test_logins_without_a_request_still_work(client, member):
    """The shell, management commands and the test client's login() call authenticate() without a request."""
    assert authenticate(username="mia", password=PASSWORD) == member
    assert authenticate(username="mia", password="wrong") is None
    assert client.login(username="mia", password=PASSWORD)


# -- through the real ASGI server ------------------------------------------------------------------


def asgi_login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    page = http.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return http.post("/accounts/login/", data={"username": username, "password": password,
                                                "csrfmiddlewaretoken": token})


def test_lockout_through_the_asgi_server(asgi_server, member, settings):
    from axes.utils import reset

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    with httpx.Client(base_url=asgi_server.url, timeout=30) as http:
        for _ in range(30):
            response = asgi_login(http, "mia", "wrong-password")
            assert response.status_code in (200, 429) and "sessionid" not in http.cookies
        response = asgi_login(http, "mia", PASSWORD)
        assert response.status_code == 429 and "sessionid" not in http.cookies
        assert f"{LOCKED} {minutes} minutes." in response.text
        failures = AccessFailureLog.objects.filter(username="mia")
        assert failures.count() == 31 and set(failures.values_list("ip_address", flat=True)) == {"127.0.0.1"}
        assert failures.filter(locked_out=True).count() == 31 - 4

        assert reset(username="mia") > 0 and reset(ip="127.0.0.1") >= 0  # what `manage.py axes_reset` does
        response = asgi_login(http, "mia", PASSWORD)
        assert response.status_code == 302 and response.headers["location"] == "/"
        assert http.get("/").status_code == 200  # logged in


def test_a_success_resets_the_count_through_the_asgi_server(asgi_server, member):
    for _ in range(2):
        with httpx.Client(base_url=asgi_server.url, timeout=30) as http:
            for _ in range(4):
                assert asgi_login(http, "mia", "wrong-password").status_code == 200
            assert asgi_login(http, "mia", PASSWORD).status_code == 302


def test_vstransfer_says_a_lockout_is_a_lockout(asgi_server, member, tmp_path):
    """The command-line client tells a locked-out account (429) from a wrong password."""
    from axes.utils import reset

    from tests.volumes.test_vstransfer_upload import vstransfer

    src = tmp_path / "one.img"
    src.write_bytes(b"x")
    wrong = vstransfer(asgi_server.url, "upload", str(src), "--pool", "1", "--volume", "v.img",
                       password="wrong-password")
    assert wrong.returncode != 0 and "wrong user name or password" in wrong.stderr
    with httpx.Client(base_url=asgi_server.url, timeout=30) as http:
        for _ in range(6):
            asgi_login(http, "mia", "wrong-password")
    try:
        locked = vstransfer(asgi_server.url, "upload", str(src), "--pool", "1", "--volume", "v.img")
        assert locked.returncode != 0, locked.stdout
        assert "too many failed logins" in locked.stderr and "wrong user name or password" not in locked.stderr
    finally:
        reset(username="mia"), reset(ip="127.0.0.1")


def test_passwords_are_checked_one_at_a_time_per_process(member, monkeypatch):
    """PacedModelBackend: logins that arrive together hash their passwords one after the other (the pages keep
    their share of the CPU), and each still gets its right answer: the right password, a wrong one, an unknown
    name (which ModelBackend hashes as long, so that it does not answer faster)."""
    import threading

    from django.conf import settings
    from django.contrib.auth import base_user

    from accounts.throttle import PacedModelBackend

    running, most, hashed = 0, 0, 0
    lock = threading.Lock()

    def counted(hash_function):
        def hashing(*args, **kwargs):
            nonlocal running, most, hashed
            with lock:
                running, hashed = running + 1, hashed + 1
                most = max(most, running)
            try:
                time.sleep(0.05)  # a hash takes time: long enough for the others to arrive meanwhile
                return hash_function(*args, **kwargs)
            finally:
                with lock:
                    running -= 1
        return hashing

    monkeypatch.setattr(base_user, "check_password", counted(base_user.check_password))
    monkeypatch.setattr(base_user, "make_password", counted(base_user.make_password))  # the unknown name's hash
    request = RequestFactory().post(reverse("login"), REMOTE_ADDR="10.0.0.9")
    tries = [("mia", PASSWORD), ("mia", "wrong"), ("nobody", "anything"), ("mia", PASSWORD)] * 2
    answers: dict[int, object] = {}

    def log_in(i: int, username: str, password: str) -> None:
        answers[i] = PacedModelBackend().authenticate(request, username=username, password=password)

    threads = [threading.Thread(target=log_in, args=(i, *t)) for i, t in enumerate(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hashed == len(tries) and most == 1  # every try hashed, never two at once
    assert [answers[i] == member for i in range(len(tries))] == [True, False, False, True] * 2
    assert "accounts.throttle.PacedModelBackend" in settings.AUTHENTICATION_BACKENDS
