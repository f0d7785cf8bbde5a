"""A create job that fails leaves its request failed with the job's reason, and a retry after the fix makes it;
a team's auto-approval approves small requests at once and leaves larger ones to an approver."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import virsh
from virtstorage.virt.units import binary_size

from .conftest import MiB, decide, file_request, messages_of, request_data
from .test_lifecycle import wait_settled

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_job_fails_the_request_and_retry_works_after_the_fix(world, celery_worker):
    from audit.models import AuditRecord
    from notifications.models import Notification
    from provisioning.models import ProvisioningRequest

    rita, otto = world.client(world.rita), world.client(world.otto)
    req = file_request(rita, world.pool, **request_data("collide.qcow2", "48M", team=world.team))
    # someone makes that name in libvirt behind the app's back, after the request was filed
    virsh("vol-create-as", world.scratch.name, "collide.qcow2", "1M", "--format", "raw")
    decide(otto, req)
    req = wait_settled(req)
    assert req.state == ProvisioningRequest.State.FAILED
    assert req.error and req.error == req.job.error and "collide.qcow2" in req.error, req.error
    assert Notification.objects.filter(user=world.rita, text__contains="failed").exists()
    page = rita.get(req.get_absolute_url()).content.decode()
    assert 'id="request-error"' in page and "Retry" in page
    assert world.scratch.vol_info("collide.qcow2")["Capacity"].startswith(str(MiB))  # the other volume is intact

    virsh("vol-delete", "--pool", world.scratch.name, "collide.qcow2")  # the fix
    first_job = req.job_id
    response = otto.post(reverse("requests:retry", args=[req.pk]), follow=True)  # an approver may retry too
    assert any("Retrying" in m for m in messages_of(response)), messages_of(response)
    req = wait_settled(req)
    assert req.state == ProvisioningRequest.State.READY, req.error
    assert req.job_id != first_job and req.error == ""
    assert req.volume.name == "collide.qcow2" and req.volume.capacity == 48 * MiB
    assert world.scratch.vol_info("collide.qcow2")["Capacity"].startswith(str(48 * MiB))
    kinds = list(req.events.values_list("kind", flat=True))
    assert kinds == ["submitted", "approved", "provisioning", "failed", "retried", "provisioning", "ready"]
    assert AuditRecord.objects.filter(action="request.retried", target_id=str(req.pk), username="otto").exists()
    # only failed requests are retried
    response = rita.post(reverse("requests:retry", args=[req.pk]), follow=True)
    assert any("only a failed request is retried" in m for m in messages_of(response))


def test_auto_approval_under_the_teams_limit_and_not_over_it(world, celery_worker):
    from notifications.models import Notification
    from provisioning.models import ProvisioningRequest

    world.team.auto_approve_max_bytes = 64 * MiB
    world.team.save()
    rita = world.client(world.rita)
    small = file_request(rita, world.pool, **request_data("small-auto.qcow2", "64M", team=world.team))
    # at the limit: approved by the system at once (and perhaps made already)
    assert small.state in (ProvisioningRequest.State.PROVISIONING, ProvisioningRequest.State.READY)
    assert small.reviewer is None and small.job is not None
    assert [e.kind for e in small.events.all()][:2] == ["submitted", "auto-approved"]
    assert small.events.get(kind="auto-approved").actor is None
    large = file_request(rita, world.pool, **request_data("large-manual.qcow2", "65M", team=world.team))
    assert large.state == ProvisioningRequest.State.PENDING and large.job is None
    # approvers are told of the one that waits for them, not of the one the system approved
    assert Notification.objects.filter(user=world.otto, text__contains="large-manual.qcow2").exists()
    assert not Notification.objects.filter(user=world.otto, text__contains="small-auto.qcow2").exists()
    assert Notification.objects.filter(user=world.rita, text__contains="small-auto.qcow2",
                                       text__icontains=": approved").exists()

    small = wait_settled(small)
    assert small.state == ProvisioningRequest.State.READY and small.volume.capacity == 64 * MiB


def test_auto_approval_still_needs_the_quota(world):
    world.team.auto_approve_max_bytes = 64 * MiB
    world.team.save()
    world.grant.max_volumes = 0
    world.grant.save()
    response = world.client(world.rita).post(reverse("requests:new", args=[world.pool.pk]),
                                             request_data("over.qcow2", "8M", team=world.team))
    assert response.status_code == 400 and "may have 0 volumes" in response.content.decode()


def test_the_create_job_rechecks_the_pools_free_space_when_it_starts(world, celery_worker):
    """The inventory said there was room (it is stale: space went since the last sync); the job asks libvirt
    again before it creates anything, fails with the numbers, and creates nothing."""
    from provisioning.models import ProvisioningRequest

    free = int(next(line for line in virsh("pool-info", "--bytes", world.scratch.name).splitlines()
                    if line.startswith("Available:")).split()[1])  # libvirt's own figure, what the job reads
    size_gib = free // 1024**3 + 2
    pool = world.pool
    pool.available, pool.capacity = (size_gib + 10) * 1024**3, (size_gib + 10) * 1024**3  # the stale view
    pool.save(update_fields=["available", "capacity"])
    rita, otto = world.client(world.rita), world.client(world.otto)
    req = file_request(rita, pool, **request_data("too-big.img", f"{size_gib}G", fmt="raw", provisioning="full",
                                                  team=world.team))
    decide(otto, req)
    req = wait_settled(req)
    assert req.state == ProvisioningRequest.State.FAILED, req.state
    assert f"pool {world.scratch.name} has" in req.error and "free now" in req.error, req.error
    assert f"a preallocated volume of {binary_size(size_gib * 1024**3)} takes" in req.error, req.error
    assert "too-big.img" not in virsh("vol-list", world.scratch.name)
