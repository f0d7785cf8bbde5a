"""Two approvers at once, each in a thread with its own database connection, approve two requests that fit only
one at a time (the team's quota, or the pool's overcommit limit): exactly one is approved and made, the other
stays pending and says why. The check is slowed down so that, without the lock, both would pass it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from tests.conftest import wait_for, wait_for_job

from .conftest import MiB, file_request, request_data

pytestmark = pytest.mark.django_db(transaction=True)


def _approve_in_threads(pairs) -> dict:
    from provisioning import services

    barrier = threading.Barrier(len(pairs))
    outcomes: dict[int, object] = {}
    errors: list[BaseException] = []

    def approve(user, req) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[req.pk] = services.review(req.pk, user, approve=True, comment="race")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert all(not thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.parametrize("limit", ["quota", "policy"])
def test_two_approvals_that_fit_one_at_a_time(world, celery_worker, monkeypatch, limit):
    from provisioning import quota, services
    from provisioning.models import ProvisioningRequest

    pool = world.pool
    if limit == "quota":
        world.grant.max_virtual_bytes = 100 * MiB
        world.grant.save()
        size = 60 * MiB
    else:
        pool.max_overcommit = Decimal("1.00")
        pool.save()
        size = (pool.capacity - pool.volume_capacity_total) * 6 // 10 // MiB * MiB
    rita = world.client(world.rita)
    first = file_request(rita, pool, **request_data("race-a.qcow2", str(size), team=world.team))
    second = file_request(rita, pool, **request_data("race-b.qcow2", str(size), team=world.team))

    checked = quota.refusal

    def slow_refusal(*args, **kwargs):
        why = checked(*args, **kwargs)
        time.sleep(0.5)  # both approvers would be past the check before either saves, were it not locked
        return why

    monkeypatch.setattr(quota, "refusal", slow_refusal)
    outcomes = _approve_in_threads([(world.otto, first), (world.ada, second)])

    assert sorted(outcome.ok for outcome in outcomes.values()) == [False, True], outcomes
    winner, loser = (first, second) if outcomes[first.pk].ok else (second, first)
    said = outcomes[loser.pk].message
    assert said.startswith(f"Request #{loser.pk} stays pending: "), said
    expected = "on the way (approved requests" if limit == "quota" else "on its way and not in the inventory"
    assert expected in said, said
    loser.refresh_from_db()
    assert loser.state == ProvisioningRequest.State.PENDING and loser.job is None
    winner.refresh_from_db()
    assert winner.state in (ProvisioningRequest.State.PROVISIONING, ProvisioningRequest.State.READY)  # job may be done

    wait_for_job(winner.job_id)
    winner = wait_for(lambda: ProvisioningRequest.objects.filter(pk=winner.pk, state="ready").first(),
                      message="the winner ready")
    assert winner.volume is not None and winner.volume.capacity == size
    assert int(world.scratch.vol_info(winner.name)["Capacity"].split()[0]) == size
    # made: its volume now counts instead of its reservation, and the other still does not fit
    assert not services.review(loser.pk, world.ada, approve=True).ok
