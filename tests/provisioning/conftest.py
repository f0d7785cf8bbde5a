"""A team that may use a real scratch pool, its requester, its approver, an admin and a rival team; helpers to
file and decide requests the way the pages do."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse

MiB = 1024**2
GiB = 1024**3
PASSWORD = "correct-horse-battery"


def make_user(username: str, team=None, team_role: str = "member", *, admin: bool = False):
    from django.contrib.auth import get_user_model

    from accounts.roles import ADMIN, MEMBER, grant
    from accounts.teams import join

    user = get_user_model().objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.org")
    grant(user, ADMIN if admin else MEMBER)
    if team is not None:
        join(user, team, team_role)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@dataclass
class World:
    pool: object  # the team's StoragePool row
    scratch: object  # its ScratchPool in libvirt
    team: object
    grant: object
    rita: object  # member of the team: files requests
    otto: object  # operator of the team: approves them
    ada: object  # site-wide admin
    rival: object  # operator of another team, which may not use the pool

    def client(self, user) -> Client:
        return client_for(user)


@pytest.fixture
def world(synced) -> World:
    return build_world(synced)


def build_world(synced) -> World:
    from accounts.models import Team
    from pools.models import PoolGrant

    pool, scratch = synced
    team = Team.objects.create(name="blue")
    grant = PoolGrant.objects.create(team=team, pool=pool)
    rivals = Team.objects.create(name="red")
    return World(pool=pool, scratch=scratch, team=team, grant=grant,
                 rita=make_user("rita", team), otto=make_user("otto", team, "operator"),
                 ada=make_user("ada", admin=True), rival=make_user("rolf", rivals, "operator"))


def request_data(name: str, capacity: str = "64M", fmt: str = "qcow2", provisioning: str = "off", *, team,
                 purpose: str = "a scratch disk for tests", backing: str = "") -> dict:
    return {"team": team.pk, "name": name, "capacity": capacity, "format": fmt, "provisioning": provisioning,
            "backing": backing, "purpose": purpose}


def file_request(client: Client, pool, **data):
    """POST the new-request form; returns the request it made (the response must redirect to it)."""
    from provisioning.models import ProvisioningRequest

    response = client.post(reverse("requests:new", args=[pool.pk]), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    return ProvisioningRequest.objects.get(pk=int(response.url.rstrip("/").rsplit("/", 1)[1]))


def decide(client: Client, *reqs, decision: str = "approve", comment: str = "", follow: bool = True):
    """POST the approval queue's form for these requests; returns the response (followed to the queue)."""
    data = {"requests": [r.pk for r in reqs], "decision": decision, "comment": comment}
    return client.post(reverse("requests:review"), data, follow=follow)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []
