"""Plain forms that take something away ask first, in the browser (data-confirm, static/js/app.js): an admin who
dismisses the question changes nothing; one who accepts it gets the action. The accounts page shows it for a new
password and a deactivation, the team page for removing a member and revoking a pool, the tokens page for a
token's revocation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership
from pools.models import PoolGrant
from tests.browser.browser import browser_page, log_in
from tests.provisioning.conftest import PASSWORD, build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def _answer(page, accept: bool, questions: list[str]) -> None:
    def handle(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()
    page.once("dialog", handle)


def test_taking_something_away_asks_first(asgi_server, synced, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    world = build_world(synced)
    questions: list[str] = []
    with browser_page(asgi_server.url) as page:
        log_in(page, world.ada.username, PASSWORD)
        page.goto("/accounts/people/")
        # One's own password is changed on its own form (the old one asked), not given anew.
        assert page.locator("tr[data-account=ada] button:has-text('New password')").count() == 0
        row = page.locator("tr[data-account=rita]")
        _answer(page, False, questions)
        row.locator("button:has-text('Deactivate')").click()
        page.wait_for_timeout(300)
        assert get_user_model().objects.get(username="rita").is_active  # dismissed: nothing sent
        _answer(page, True, questions)
        row.locator("button:has-text('Deactivate')").click()
        page.wait_for_selector("text=rita can no longer log in")
        assert not get_user_model().objects.get(username="rita").is_active
        _answer(page, False, questions)
        page.locator("tr[data-account=otto] button:has-text('New password')").click()
        page.wait_for_timeout(300)
        assert page.locator("#handed-password").count() == 0

        page.goto(f"/teams/{world.team.pk}/")
        _answer(page, False, questions)
        page.locator("button:has-text('Remove')").first.click()
        _answer(page, False, questions)
        page.locator("button:has-text('Revoke')").first.click()
        page.wait_for_timeout(300)
        assert Membership.objects.filter(team=world.team).count() == 2
        assert PoolGrant.objects.filter(team=world.team).exists()
    assert questions[0] == "Deactivate rita? They can no longer log in; their teams, jobs and requests stay."
    assert questions[2] == "Give otto a new password? The current one stops working and their sessions end."
    assert questions[3].startswith("Remove ") and questions[4].startswith(f"Revoke pool {world.pool.name} from team")
