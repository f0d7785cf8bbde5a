"""Everything that changes a request: submit, edit, withdraw, review (approve or reject), retry, and the job's
outcome. Views call these; each step is one transaction with its timeline entry, audit record and
notifications.

The lock: approving (and retrying) locks the request row, then the pool row, then the team's grant row
(``select_for_update()`` inside ``transaction.atomic()``; on SQLite every transaction here begins IMMEDIATE,
which serializes writers just the same), re-checks the name, the pool's policy and the team's quota with every
reservation counted (provisioning.quota), then moves the request to approved and launches its create job in
the same transaction. Two approvals that only fit one at a time run one after the other: the second sees the
first one's reservation and is refused with the numbers; its request stays pending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django_fsm import ConcurrentTransition

from jobs.models import Job
from jobs.rows import for_update, held
from jobs.runner import JobError, launch
from pools.models import StoragePool
from virtstorage.virt.units import binary_size
from volumes.models import Volume
from volumes.tasks import create_volume_job

from . import announce, quota
from .models import ProvisioningRequest, RequestEvent
from .rules import own_request

log = logging.getLogger(__name__)
Request = ProvisioningRequest
State = Request.State
Kind = RequestEvent.Kind
# An edit's summary in the timeline names the fields changed (the audit detail keeps these keys).
FIELD_WORDS = {"team": pgettext_lazy("request field", "team"), "name": pgettext_lazy("request field", "name"),
               "capacity": pgettext_lazy("request field", "capacity"),
               "format": pgettext_lazy("request field", "format"),
               "provisioning": pgettext_lazy("request field", "provisioning"),
               "backing": pgettext_lazy("request field", "backing"),
               "purpose": pgettext_lazy("request field", "purpose")}


class Refused(Exception):
    """The step cannot be taken; the message says why, for the user."""


@dataclass
class Outcome:
    pk: int
    ok: bool
    message: str


def _locked(pk: int) -> Request:
    return for_update(Request.objects.select_related("team", "pool", "pool__host")).get(pk=pk)


def request_fields(data: dict) -> dict:
    """A request's fields from a cleaned RequestForm."""
    backing = data.get("backing")
    return {"team": data["team"], "name": data["name"], "capacity": data["capacity"], "format": data["format"],
            "preallocation": data["provisioning"], "backing": backing, "backing_path": backing.path if backing else "",
            "purpose": data["purpose"]}


def submit(*, user, pool: StoragePool, data: dict, request: HttpRequest | None = None) -> tuple[Request, str]:
    """File a request (the form has checked it); approve it at once when the team's auto-approval covers it.
    Returns the request and what happened, in words."""
    with transaction.atomic():
        _hold_named(pool, data.get("backing"))
        req = Request.objects.create(pool=pool, requested_by=user, **request_fields(data))
        announce.step(req, Kind.SUBMITTED, user, req.purpose, request=request)
    return req, _after_filing(req, request)


def edit(pk: int, *, user, data: dict, changes: dict, request: HttpRequest | None = None) -> tuple[Request, str]:
    with transaction.atomic():
        req = _locked(pk)
        if not own_request(user, req) or req.state != State.PENDING:
            raise Refused(_("Request #%(pk)s is %(state)s: only its requester may change it, while it waits for "
                            "approval.") % {"pk": pk, "state": req.get_state_display().lower()})
        _hold_named(req.pool, data.get("backing"))
        for field, value in request_fields(data).items():
            setattr(req, field, value)
        req.edit()
        req.save()
        summary = ", ".join(f"{FIELD_WORDS.get(name, name)}: {change['from']} → {change['to']}"
                            for name, change in changes.items())
        announce.step(req, Kind.EDITED, user, summary, request=request, detail={"changes": changes})
    return req, _after_filing(req, request, edited=True)


def _hold_named(pool: StoragePool, backing: Volume | None) -> None:
    """Keep the pool and the backing volume a request names until it is saved: PoolRemoved or VolumeRemoved (a
    404 with the reason) if a sync removed one since the form was checked."""
    pool.hold()
    if backing is not None:
        backing.hold()


def _after_filing(req: Request, request: HttpRequest | None, *, edited: bool = False) -> str:
    """Auto-approval if the team's limit covers the request; else the approvers are told (of a new request)."""
    limit = req.team.auto_approve_max_bytes
    if limit is not None and req.capacity <= limit:
        outcome = review(req.pk, None, approve=True, request=request,
                         comment=_("Team %(team)s approves requests up to %(size)s automatically.")
                         % {"team": req.team.name, "size": binary_size(limit)})
        if outcome.ok:
            return outcome.message
        note = _("Not approved automatically: %(reason)s It waits for an approver.") % {"reason": outcome.message}
    else:
        note = _("It waits for an approver of team %(team)s.") % {"team": req.team.name}
    if not edited:
        with transaction.atomic():
            announce.tell_approvers(req)
    return note


def withdraw(pk: int, *, user, request: HttpRequest | None = None) -> Request:
    with transaction.atomic():
        req = _locked(pk)
        if not own_request(user, req) or req.state != State.PENDING:
            raise Refused(_("Request #%(pk)s is %(state)s: only its requester may withdraw it, while it waits for "
                            "approval.") % {"pk": pk, "state": req.get_state_display().lower()})
        req.withdraw()
        req.save()
        announce.step(req, Kind.WITHDRAWN, user, request=request)
    return req


def review(pk: int, reviewer, *, approve: bool, comment: str = "", request: HttpRequest | None = None) -> Outcome:
    """Approve (and start the job) or reject one pending request. reviewer None: the system (auto-approval).
    The caller has checked that the reviewer may review it."""
    try:
        with transaction.atomic():
            req = _locked(pk)
            if req.state != State.PENDING:
                raise Refused(_("Request #%(pk)s is %(state)s already.")
                              % {"pk": pk, "state": req.get_state_display().lower()})
            if reviewer is not None and own_request(reviewer, req):
                raise Refused(_("Request #%(pk)s is yours: nobody approves or rejects their own request (withdraw it "
                                "instead); another approver decides.") % {"pk": pk})
            if not approve:
                return _reject(req, reviewer, comment, request)
            return _approve(req, reviewer, comment, request)
    except (Refused, ConcurrentTransition) as exc:
        return Outcome(pk, False, str(exc) if isinstance(exc, Refused)
                       else _("Request #%(pk)s changed meanwhile.") % {"pk": pk})
    except JobError as exc:
        return _queue_refused(pk, exc)


def _reject(req: Request, reviewer, comment: str, request) -> Outcome:
    req.reject(reviewer, comment)
    req.save()
    announce.step(req, Kind.REJECTED, reviewer, comment, request=request)
    announce.tell_requester(req, lambda: (_("rejected: %(comment)s") % {"comment": comment} if comment
                                          else _("rejected.")))
    return Outcome(req.pk, True, _("Rejected request #%(pk)s (%(name)s).") % {"pk": req.pk, "name": req.name})


def _locked_ledger(req: Request) -> quota.Ledger:
    """Lock the pool row and the team's grant row (in this order) and read the numbers that decide."""
    req.pool = for_update(StoragePool.objects.select_related("host")).get(pk=req.pool_id)
    return quota.ledger_for(req, lock_grants=True)


def _approve(req: Request, reviewer, comment: str, request) -> Outcome:
    why = quota.refusal(req, _locked_ledger(req))
    if why:
        raise Refused(_("Request #%(pk)s stays pending: %(reason)s") % {"pk": req.pk, "reason": why})
    req.approve(reviewer, comment)
    req.save()
    announce.step(req, Kind.APPROVED if reviewer else Kind.AUTO_APPROVED, reviewer, comment, request=request)
    job = _start(req)
    announce.tell_requester(req, lambda: (_("approved (%(comment)s); job #%(job)s is making the volume.")
                                          % {"comment": comment, "job": job.pk} if comment and reviewer
                                          else _("approved; job #%(job)s is making the volume.") % {"job": job.pk}))
    return Outcome(req.pk, True, _("Approved request #%(pk)s (%(name)s); job #%(job)s makes the volume.")
                   % {"pk": req.pk, "name": req.name, "job": job.pk})


def _start(req: Request) -> Job:
    """Launch the create job for the request (approved, or failed and retried): it goes provisioning.
    The job is the requester's, so they watch it live (and may cancel it)."""
    backing = req.backing
    params = {"name": req.name, "capacity": req.capacity, "format": req.format, "preallocation": req.preallocation,
              "backing_path": backing.path if backing else "", "backing_format": backing.format if backing else "",
              "team": req.team_id}  # the volume is the team's (volumes/quota.py); the request reserves until then
    job = launch(create_volume_job, kind="create", user=req.requested_by, host=req.pool.host, pool=req.pool,
                 volume_name=req.name, params=params, cancellable=True)
    req.start(job)
    req.save()
    announce.step(req, Kind.PROVISIONING, None, _("Job #%(job)s creates the volume.") % {"job": job.pk})
    return job


def _queue_refused(pk: int, exc: JobError) -> Outcome:
    """launch() refused (Redis down, the name busy): nothing was approved. Or the queue refused the job once
    committed: the job failed, and so did the request (retry it later)."""
    state = Request.objects.filter(pk=pk).values_list("state", flat=True).first()
    if state == State.PENDING:
        return Outcome(pk, False, _("Request #%(pk)s stays pending: %(reason)s") % {"pk": pk, "reason": exc})
    return Outcome(pk, False, _("Request #%(pk)s was approved but its job could not be queued: %(reason)s")
                   % {"pk": pk, "reason": exc})


def retry(pk: int, *, user, request: HttpRequest | None = None) -> Outcome:
    """A failed request again: policy and quota re-checked under the lock (its reservation was released), a new
    job launched. The caller has checked that the user is its requester or an approver."""
    try:
        with transaction.atomic():
            req = _locked(pk)
            if req.state != State.FAILED:
                raise Refused(_("Request #%(pk)s is %(state)s: only a failed request is retried.")
                              % {"pk": pk, "state": req.get_state_display().lower()})
            why = quota.refusal(req, _locked_ledger(req), inventory_name=False)
            if why:
                raise Refused(_("Request #%(pk)s cannot be retried now: %(reason)s") % {"pk": pk, "reason": why})
            announce.step(req, Kind.RETRIED, user, _("After: %(error)s") % {"error": req.error}, request=request)
            job = _start(req)
            return Outcome(pk, True, _("Retrying request #%(pk)s: job #%(job)s makes the volume.")
                           % {"pk": pk, "job": job.pk})
    except (Refused, ConcurrentTransition) as exc:
        return Outcome(pk, False, str(exc) if isinstance(exc, Refused)
                       else _("Request #%(pk)s changed meanwhile.") % {"pk": pk})
    except JobError as exc:
        return _queue_refused(pk, exc)


# -- the job's outcome ----------------------------------------------------------------------------------------

def settle(job: Job) -> None:
    """The request whose create job this is becomes ready (linked to the volume the job's sync put in the
    inventory) or failed with the job's error. Idempotent: from the jobs' end signal and from any page that
    finds a provisioning request whose job is over."""
    if job.is_active:
        return
    for pk in Request.objects.filter(job_id=job.pk, state=State.PROVISIONING).values_list("pk", flat=True):
        with transaction.atomic():
            req = _locked(pk)
            if req.state != State.PROVISIONING or req.job_id != job.pk:
                continue
            if job.state == Job.State.SUCCEEDED:
                req.succeed(held(Volume.objects.filter(pool_id=req.pool_id, name=req.name).first()))
                req.save()
                announce.step(req, Kind.READY, None, job.result)
                announce.tell_requester(req, lambda: _("ready."))
            else:
                req.fail(job.error or _("Job #%(job)s was %(state)s.")
                         % {"job": job.pk, "state": job.get_state_display().lower()})
                req.save()
                announce.step(req, Kind.FAILED, None, req.error)
                announce.tell_requester(req, lambda error=req.error: _("failed: %(error)s") % {"error": error})


def catch_up(req: Request) -> Request:
    """Bring a request up to date with its job before showing it: settle it when its job ended without the
    signal reaching us, and link a ready request to its volume once the inventory has it."""
    if req.state == State.PROVISIONING and req.job_id:
        job = Job.objects.filter(pk=req.job_id).first()
        if job is not None and not job.is_active:
            settle(job)
            req.refresh_from_db()
        if job is not None:
            # The page shows this reading of the job: a second one could find it ended after this one found it
            # running, and the page would show neither the live job nor the settled request.
            req.job = job
    elif req.state == State.READY and req.volume_id is None:
        with transaction.atomic():
            volume = held(Volume.objects.filter(pool_id=req.pool_id, name=req.name).first())
            if volume is not None:
                Request.objects.filter(pk=req.pk, volume__isnull=True).update(volume=volume)
                req.volume = volume
    return req


def job_finished(sender, job: Job, **kwargs) -> None:
    """Receiver of jobs.signals.job_finished (connected in apps.py)."""
    if job.kind == "create" and job.pool_id:
        settle(job)
