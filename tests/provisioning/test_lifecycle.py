"""A request's whole life on real services: filed by a member, approved by an operator, made by the create job in
a real Celery worker on the real libvirtd (checked with virsh), ready and linked to the inventory's volume; told
to the people concerned and recorded in the audit log."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.conftest import virsh, wait_for, wait_for_job

from .conftest import MiB, decide, file_request, messages_of, request_data

pytestmark = pytest.mark.django_db(transaction=True)


def wait_settled(req, timeout: float = 120):
    """Wait for the request's job, then for the request to leave provisioning."""
    from provisioning.models import ProvisioningRequest

    req.refresh_from_db()
    assert req.job_id, f"request #{req.pk} has no job ({req.state}: {req.error})"
    wait_for_job(req.job_id, timeout=timeout)
    return wait_for(lambda: (r := ProvisioningRequest.objects.get(pk=req.pk)).state
                    not in ProvisioningRequest.OPEN_STATES and r, timeout=30, message=f"request #{req.pk} settled")


def vol_facts(scratch, name: str) -> tuple[int, int, str]:
    """(capacity, allocation, format) of the volume as libvirt has it."""
    info = scratch.vol_info(name)
    xml = ET.fromstring(virsh("vol-dumpxml", "--pool", scratch.name, name))
    return int(info["Capacity"].split()[0]), int(info["Allocation"].split()[0]), xml.find("target/format").get("type")


@pytest.mark.parametrize(("fmt", "provisioning", "capacity"), [("qcow2", "off", 96 * MiB), ("raw", "full", 24 * MiB)])
def test_submit_approve_watch_ready(world, celery_worker, fmt, provisioning, capacity):
    from audit.models import AuditRecord
    from notifications.models import Notification
    from provisioning.models import ProvisioningRequest, RequestEvent
    from volumes.models import Volume

    rita, otto = world.client(world.rita), world.client(world.otto)
    name = f"asked-{fmt}.img"
    req = file_request(rita, world.pool, **request_data(name, f"{capacity // MiB}M", fmt, provisioning,
                                                        team=world.team))
    assert req.state == ProvisioningRequest.State.PENDING and req.requested_by == world.rita
    assert messages_of(rita.get(req.get_absolute_url())) == [
        f"Request #{req.pk} filed. It waits for an approver of team {world.team.name}."]
    assert name not in virsh("vol-list", world.scratch.name)  # nothing happens before approval
    # the approvers (the team's operator and the admin) are told; the rival team's operator and rita are not
    told = set(Notification.objects.unread().filter(text__contains=name).values_list("user__username", flat=True))
    assert told == {"otto", "ada"}

    page = otto.get(reverse("requests:queue"))
    assert f"#{req.pk} {name}" in page.content.decode()
    response = decide(otto, req, comment="for the test run")
    assert any("Approved" in m for m in messages_of(response)), messages_of(response)
    req.refresh_from_db()
    # provisioning, or already ready: a small create job may be over by now
    assert req.state in (ProvisioningRequest.State.PROVISIONING, ProvisioningRequest.State.READY)
    assert req.reviewer == world.otto and req.job is not None
    assert req.job.created_by == world.rita  # the requester's job: they watch it live

    # the request page embeds the job's live progress while it runs (or already shows the outcome)
    page = rita.get(req.get_absolute_url()).content.decode()
    assert f"jobs/{req.job_id}/events/" in page or "ready-volume" in page

    req = wait_settled(req)
    assert req.state == ProvisioningRequest.State.READY, req.error
    assert req.volume == Volume.objects.get(pool=world.pool, name=name)
    size, allocation, actual_format = vol_facts(world.scratch, name)
    assert (size, actual_format) == (capacity, fmt)
    if provisioning == "full":
        assert allocation >= capacity
    else:
        assert allocation < capacity
    state = rita.get(reverse("requests:state", args=[req.pk])).content.decode()
    assert 'id="ready-volume"' in state and req.volume.get_absolute_url() in state

    kinds = list(RequestEvent.objects.filter(request=req).values_list("kind", flat=True))
    assert kinds == ["submitted", "approved", "provisioning", "ready"]
    texts = list(Notification.objects.filter(user=world.rita).values_list("text", flat=True))
    assert any("approved" in t for t in texts) and any("ready" in t for t in texts), texts
    assert not Notification.objects.unread().filter(user__in=[world.otto, world.ada]).exists()  # approved: settled
    actions = set(AuditRecord.objects.filter(target_type="request", target_id=str(req.pk))
                  .values_list("action", "username"))
    assert {("request.submitted", "rita"), ("request.approved", "otto")} <= actions


def test_reject_with_a_comment(world):
    from notifications.models import Notification
    from provisioning.models import ProvisioningRequest

    rita, otto = world.client(world.rita), world.client(world.otto)
    req = file_request(rita, world.pool, **request_data("not-needed.img", team=world.team))
    response = decide(otto, req, decision="reject")  # a rejection needs a reason
    assert any("Say why" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == ProvisioningRequest.State.PENDING

    decide(otto, req, decision="reject", comment="use the shared scratch volume")
    req.refresh_from_db()
    assert req.state == ProvisioningRequest.State.REJECTED
    assert (req.reviewer, req.review_comment) == (world.otto, "use the shared scratch volume")
    assert req.events.last().kind == "rejected"
    assert Notification.objects.filter(user=world.rita, text__contains="use the shared scratch volume").exists()
    # decided: the approvers' "it waits for your approval" no longer counts under their bells; rita's news does
    assert not Notification.objects.unread().filter(user__in=[world.otto, world.ada]).exists()
    assert Notification.objects.filter(user__in=[world.otto, world.ada], text__contains="not-needed.img").count() == 2
    assert Notification.objects.unread().filter(user=world.rita).exists()
    assert "use the shared scratch volume" in rita.get(req.get_absolute_url()).content.decode()
    assert req.job is None and "not-needed.img" not in virsh("vol-list", world.scratch.name)


def test_withdraw_and_edit_a_pending_request(world):
    from audit.models import AuditRecord
    from provisioning.models import ProvisioningRequest

    rita, otto = world.client(world.rita), world.client(world.otto)
    req = file_request(rita, world.pool, **request_data("first-try.img", "64M", team=world.team))
    edit_url = reverse("requests:edit", args=[req.pk])
    assert "64M" in rita.get(edit_url).content.decode()
    assert otto.get(edit_url).status_code == 403  # the requester only
    response = rita.post(edit_url, request_data("second-try.img", "128M", team=world.team, purpose="bigger"))
    assert response.status_code == 302
    req.refresh_from_db()
    assert (req.state, req.name, req.capacity, req.purpose) == ("pending", "second-try.img", 128 * MiB, "bigger")
    edited = req.events.last()
    assert edited.kind == "edited" and "first-try.img → second-try.img" in edited.comment
    assert "capacity: 64.0 MiB → 128 MiB" in edited.comment
    assert AuditRecord.objects.filter(action="request.edited", target_id=str(req.pk)).exists()

    assert otto.post(reverse("requests:withdraw", args=[req.pk])).status_code == 403
    rita.post(reverse("requests:withdraw", args=[req.pk]))
    req.refresh_from_db()
    assert req.state == ProvisioningRequest.State.WITHDRAWN
    assert AuditRecord.objects.filter(action="request.withdrawn", target_id=str(req.pk), username="rita").exists()
    # withdrawn: no more edits, and the name is free again
    rita.post(edit_url, request_data("third-try.img", team=world.team))
    req.refresh_from_db()
    assert req.name == "second-try.img"
    again = file_request(rita, world.pool, **request_data("second-try.img", team=world.team))
    assert again.state == "pending"
    decide(otto, req)  # deciding a withdrawn request does nothing
    req.refresh_from_db()
    assert req.state == ProvisioningRequest.State.WITHDRAWN


def test_the_name_must_be_free_in_the_pool_and_among_open_requests(world):
    rita = world.client(world.rita)
    response = rita.post(reverse("requests:new", args=[world.pool.pk]),
                         request_data("base.qcow2", team=world.team))
    assert response.status_code == 400
    assert f"Pool {world.pool.name} already has a volume named base.qcow2." in response.content.decode()
    first = file_request(rita, world.pool, **request_data("wanted.img", team=world.team))
    response = rita.post(reverse("requests:new", args=[world.pool.pk]), request_data("wanted.img", team=world.team))
    assert response.status_code == 400
    assert f"Request #{first.pk} (pending approval) already asks for wanted.img" in response.content.decode()


def test_an_overlay_on_a_backing_volume(world, celery_worker):
    from volumes.models import Volume

    world.team.auto_approve_max_bytes = 256 * MiB  # approved by the system: no approver needed here
    world.team.save()
    base = Volume.objects.get(pool=world.pool, name="base.qcow2")
    rita = world.client(world.rita)
    response = rita.post(reverse("requests:new", args=[world.pool.pk]),
                         request_data("small-overlay.qcow2", "64M", backing=str(base.pk), team=world.team))
    assert "An overlay cannot be smaller than its backing volume" in response.content.decode()
    req = file_request(rita, world.pool, **request_data("overlay2.qcow2", "128M", backing=str(base.pk),
                                                         team=world.team))
    assert req.backing == base and req.backing_path == base.path
    req = wait_settled(req)
    assert req.state == "ready", req.error
    xml = ET.fromstring(virsh("vol-dumpxml", "--pool", world.scratch.name, "overlay2.qcow2"))
    assert xml.find("backingStore/path").text == base.path


def test_the_request_page_shows_the_job_as_it_read_it_once(world, django_assert_num_queries):
    """The page settles a request whose job is over, then shows the job live or not: one reading of the job for
    both. A second reading could find the job ended after the first found it running (the worker settles it
    between the two), and the page showed neither the live job nor the ready volume (a fresh-clone CI run)."""
    from jobs.models import Job
    from provisioning import services
    from provisioning.models import ProvisioningRequest

    job = Job.objects.create(kind="create", host=world.pool.host, pool=world.pool, pool_name=world.pool.name,
                             volume_name="racing.img", created_by=world.rita, state=Job.State.RUNNING)
    req = ProvisioningRequest.objects.create(team=world.team, pool=world.pool, requested_by=world.rita,
                                             name="racing.img", capacity=64 * MiB,
                                             state=ProvisioningRequest.State.PROVISIONING, job=job)
    shown = services.catch_up(ProvisioningRequest.objects.get(pk=req.pk))
    Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED)  # the job ends meanwhile
    with django_assert_num_queries(0):
        assert shown.job.pk == job.pk and shown.job.is_active  # the page watches it; its stream's end reloads it
    assert services.catch_up(ProvisioningRequest.objects.get(pk=req.pk)).state == ProvisioningRequest.State.READY
