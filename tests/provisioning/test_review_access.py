"""Who sees and decides which request: nobody approves their own, operators review only their teams' requests,
members get a 403 on the queue, another team's request is a 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from .conftest import decide, file_request, make_user, messages_of, request_data

pytestmark = pytest.mark.django_db(transaction=True)


def test_nobody_approves_their_own_request(world):
    from provisioning import services
    from provisioning.models import ProvisioningRequest

    otto = world.client(world.otto)
    own = file_request(otto, world.pool, **request_data("mine.img", team=world.team))
    queue = otto.get(reverse("requests:queue")).content.decode()
    assert f"#{own.pk} mine.img" in queue and f'name="requests" value="{own.pk}"' not in queue  # no checkbox
    response = decide(otto, own)
    assert any("nobody approves or rejects their own request" in m for m in messages_of(response))
    own.refresh_from_db()
    assert own.state == ProvisioningRequest.State.PENDING and own.job is None
    # not through the service either, and not by rejecting it
    assert not services.review(own.pk, world.otto, approve=False, comment="no").ok
    # the request page offers no review form to its requester, but another approver gets one
    assert 'id="review"' not in otto.get(own.get_absolute_url()).content.decode()
    assert 'id="review"' in world.client(world.ada).get(own.get_absolute_url()).content.decode()


def test_members_get_403_on_the_queue_and_see_no_approvals_link(world):
    rita = world.client(world.rita)
    assert rita.get(reverse("requests:queue")).status_code == 403
    assert rita.post(reverse("requests:review"), {"requests": [1], "decision": "approve"}).status_code == 403
    page = rita.get(reverse("requests:list")).content.decode()
    assert 'id="approvals-link"' not in page and ">Requests</a>" in page


def test_operators_see_only_their_teams_requests(world):
    from accounts.models import Team
    from pools.models import PoolGrant

    green = Team.objects.create(name="green")
    PoolGrant.objects.create(team=green, pool=world.pool)
    gina = make_user("gina", green)
    theirs = file_request(world.client(gina), world.pool, **request_data("green.img", team=green))
    ours = file_request(world.client(world.rita), world.pool, **request_data("blue.img", team=world.team))

    otto = world.client(world.otto)
    queue = otto.get(reverse("requests:queue")).content.decode()
    assert f"#{ours.pk} blue.img" in queue and "green.img" not in queue
    assert "Approvals (1)" in queue
    assert otto.get(theirs.get_absolute_url()).status_code == 404  # another team's request: not found
    decide(otto, theirs)  # not among the choices: nothing happens
    theirs.refresh_from_db()
    assert theirs.state == "pending"
    # the admin sees both, filtered by team or pool (django-filter)
    ada = world.client(world.ada)
    everything = ada.get(reverse("requests:queue")).content.decode()
    assert "green.img" in everything and "blue.img" in everything and "Approvals (2)" in everything
    only_green = ada.get(reverse("requests:queue"), {"team": green.pk}).content.decode()
    assert "green.img" in only_green and "blue.img" not in only_green
    assert "blue.img" in ada.get(reverse("requests:queue"), {"pool": world.pool.pk}).content.decode()


def test_another_teams_request_is_not_found(world):
    rita = world.client(world.rita)
    req = file_request(rita, world.pool, **request_data("private.img", team=world.team))
    rolf = world.client(world.rival)  # operator of a team that may not use the pool
    for name in ("detail", "state", "edit"):
        assert rolf.get(reverse(f"requests:{name}", args=[req.pk])).status_code == 404
    for name in ("withdraw", "retry"):
        assert rolf.post(reverse(f"requests:{name}", args=[req.pk])).status_code == 404
    assert rolf.get(reverse("requests:new", args=[world.pool.pk])).status_code == 404
    # a teammate who is not an operator does not see it either
    bob = world.client(make_user("bob", world.team))
    assert bob.get(req.get_absolute_url()).status_code == 404
    assert bob.get(reverse("requests:list")).content.decode().count("private.img") == 0


def test_pool_page_offers_a_request_to_those_who_may_not_create(world):
    button = "Request a volume…"
    assert button in world.client(world.rita).get(world.pool.get_absolute_url()).content.decode()
    assert button not in world.client(world.otto).get(world.pool.get_absolute_url()).content.decode()
    page = world.client(world.rita).get(reverse("requests:pick_pool")).content.decode()
    assert reverse("requests:new", args=[world.pool.pk]) in page


def test_the_review_form_checks_csrf(world):
    from django.test import Client

    req = file_request(world.client(world.rita), world.pool, **request_data("csrf.img", team=world.team))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.otto)
    assert strict.post(reverse("requests:review"), {"requests": [req.pk], "decision": "approve"}).status_code == 403
    req.refresh_from_db()
    assert req.state == "pending"


@pytest.mark.parametrize("pk", ["99999999999999999999999", "-99999999999999999999999", "1e3", "abc"])
def test_an_id_no_request_could_have_is_an_invalid_choice_not_an_error(world, pk):
    from provisioning.models import ProvisioningRequest

    req = file_request(world.client(world.rita), world.pool, **request_data("kept.qcow2", team=world.team))
    response = world.client(world.ada).post(reverse("requests:review"),
                                            {"requests": [pk, req.pk], "decision": "approve"}, follow=True)
    assert response.status_code == 200
    assert any("is not one of the available choices" in m for m in messages_of(response)), messages_of(response)
    assert ProvisioningRequest.objects.get(pk=req.pk).state == "pending"  # nothing decided
