"""The two roles, as every view asks them: right answers, one query per request for both questions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import ADMIN, MEMBER, grant, is_admin, is_member

pytestmark = pytest.mark.django_db


def fresh(user):
    """The account as the next request loads it: nothing remembered on the object."""
    return get_user_model().objects.get(pk=user.pk)


def test_both_roles_are_answered_by_one_query_per_user_object() -> None:
    users = get_user_model().objects
    member, admin, nobody = (users.create_user(name, password="x") for name in ("mia", "ada", "nora"))
    grant(member, MEMBER)
    grant(admin, ADMIN)
    for user, admin_answer, member_answer in ((member, False, True), (admin, True, True), (nobody, False, False)):
        user = fresh(user)
        with CaptureQueriesContext(connection) as queries:
            for _ in range(3):
                assert (is_admin(user), is_member(user)) == (admin_answer, member_answer), user.username
        assert len(queries) == 1, user.username


def test_a_grant_is_seen_by_the_object_that_asked_before() -> None:
    user = get_user_model().objects.create_user("lea", password="x")
    assert not is_member(user)
    grant(user, MEMBER)
    assert is_member(user) and not is_admin(user)
    grant(user, ADMIN)
    assert is_admin(user)


def test_no_role_for_the_anonymous_and_the_inactive_every_role_for_a_superuser() -> None:
    users = get_user_model().objects
    inactive = users.create_user("ida", password="x", is_active=False)
    grant(inactive, ADMIN)
    root = users.create_superuser("root", password="x")
    assert not is_member(AnonymousUser()) and not is_admin(AnonymousUser())
    assert not is_member(fresh(inactive)) and not is_admin(fresh(inactive))
    with CaptureQueriesContext(connection) as queries:
        assert is_admin(fresh(root)) and is_member(fresh(root))
    assert len(queries) == 2  # loading the account twice; a superuser's role needs no query
