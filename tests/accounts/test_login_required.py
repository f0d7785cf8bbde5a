"""Sign-in everywhere (accounts/middleware.py): a page sends the signed-out to the login page and back; an htmx
request from a page whose session ended sends that whole page there, never the login form into a corner of it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.browser.browser import browser_page, log_in

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_a_page_redirects_and_an_htmx_request_sends_its_page_to_the_login(member_client):
    client = Client()  # signed out (member_client is the client fixture, signed in)
    page = client.get("/jobs/", {"state": "running"})
    assert page.status_code == 302 and page["Location"] == "/accounts/login/?next=/jobs/%3Fstate%3Drunning"

    poll = client.get("/jobs/1/progress/", HTTP_HX_CURRENT_URL="http://testserver/jobs/1/?tab=log", **HTMX)
    assert poll.status_code == 200 and poll["HX-Redirect"] == "/accounts/login/?next=/jobs/1/%3Ftab%3Dlog"
    assert poll.content == b""
    elsewhere = client.get("/jobs/1/progress/", HTTP_HX_CURRENT_URL="https://evil.example/x", **HTMX)
    assert elsewhere["HX-Redirect"] == "/accounts/login/?next=/"  # only a page of this site is gone back to
    blind = client.post(reverse("jobs:cancel", args=[1]), **HTMX)  # no current URL said
    assert blind["HX-Redirect"] == "/accounts/login/?next=/"

    bell = client.get(reverse("notifications:bell"), **HTMX)  # not sign-in only: it stops its own polling
    assert bell.status_code == 286 and "HX-Redirect" not in bell
    assert member_client.get("/jobs/", **HTMX).status_code == 200  # signed in: answered as ever


@pytest.mark.browser
def test_a_page_whose_session_ended_goes_to_the_login_page_on_its_next_htmx_request(asgi_server, synced, member):
    pool, _ = synced
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/pools/{pool.pk}/")
        page.context.clear_cookies()  # the session ends (expired, or logged out elsewhere)
        page.click("#volume-table th >> text=Disk size")  # the table's sort is an htmx request
        page.wait_for_url(f"**/accounts/login/?next=/pools/{pool.pk}/")
        page.fill("#id_username", member.username)
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"**/pools/{pool.pk}/")  # and back where it was
