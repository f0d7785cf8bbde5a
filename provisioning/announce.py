"""Every step of a request is told three ways: its timeline (RequestEvent), the audit log and, for the people
it concerns, a notification. Call inside the transaction that made the step: they commit (or not) with it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from audit.log import record
from notifications.send import notify, settle
from virtstorage.virt.units import binary_size

from . import rules
from .models import ProvisioningRequest, RequestEvent

Kind = RequestEvent.Kind

# Steps that go to the audit log (the job's own start and end are recorded by the job runner).
AUDITED = {Kind.SUBMITTED: "submitted", Kind.EDITED: "edited", Kind.WITHDRAWN: "withdrawn",
           Kind.APPROVED: "approved", Kind.AUTO_APPROVED: "approved", Kind.REJECTED: "rejected",
           Kind.RETRIED: "retried"}

# Steps after which the request no longer waits for an approver.
SETTLING = {Kind.APPROVED, Kind.AUTO_APPROVED, Kind.REJECTED, Kind.WITHDRAWN}


def what(req: ProvisioningRequest) -> str:
    return (_("%(name)s (%(size)s %(format)s, %(provisioning)s) in pool %(pool)s")
            % {"name": req.name, "size": binary_size(req.capacity), "format": req.format,
               "provisioning": req.provisioning_label, "pool": req.pool.name})


def step(req: ProvisioningRequest, kind: str, actor=None, comment: str = "", *, request: HttpRequest | None = None,
         detail: dict | None = None) -> RequestEvent:
    """The timeline entry and, for the steps people take, the audit record."""
    event = RequestEvent.objects.create(request=req, actor=actor, kind=kind, comment=comment)
    if kind in SETTLING:
        settle(review_topic(req))  # no approver is needed any more: their bells stop counting it
    if kind in AUDITED:
        info = {"request": req.pk, "pool": req.pool.name, "name": req.name, "capacity": req.capacity,
                "format": req.format, "preallocation": req.preallocation, "state": req.state, **(detail or {})}
        if comment:
            info["comment"] = comment
        if kind == Kind.AUTO_APPROVED:
            info["automatic"] = True
        with translation.override("en"):  # the audit log's own words stay English
            target = f"request #{req.pk}: {what(req)}"
        record(f"request.{AUDITED[kind]}", request=request if actor is not None else None, user=actor,
               target_type="request", target_id=str(req.pk), target=target, team=req.team.name, detail=info)
    return event


def tell_requester(req: ProvisioningRequest, news: Callable[[], str]) -> None:
    """news() writes what happened; it is called in the requester's language (notifications.notify)."""
    if req.requested_by is not None:
        # Translators: %(news)s is what happened: "rejected: …", "approved; job #… is making the volume.", "ready."
        notify(req.requested_by, lambda: _("Request #%(pk)s, %(what)s: %(news)s") % {"pk": req.pk, "what": what(req),
                                                                                      "news": news()},
               url=req.get_absolute_url())


def tell_approvers(req: ProvisioningRequest) -> None:
    def text() -> str:
        who = req.requested_by.get_username() if req.requested_by else _("someone")
        return (_("%(who)s asks for %(what)s for team %(team)s; it waits for your approval.")
                % {"who": who, "what": what(req), "team": req.team.name})

    notify(rules.approvers(req), text, url=req.get_absolute_url(),
           subject=lambda: _("Request #%(pk)s waits for approval") % {"pk": req.pk}, topic=review_topic(req))


def review_topic(req: ProvisioningRequest) -> str:
    """The approvers' notifications of a pending request, settled once it is decided or withdrawn."""
    return f"request-{req.pk}-review"
