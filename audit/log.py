"""Writing the audit log: ``record()`` is the one way in.

A record is written in the caller's transaction and a failure to write it is not hidden: it raises.
Inside ``transaction.atomic()`` (a job's launch and its end) the change and its record commit or roll
back together; elsewhere a change whose record cannot be written answers with an error instead of
going unrecorded.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from typing import Any

from django.db import models
from django.http import HttpRequest

from accounts.throttle import client_ip

from .models import AuditRecord

# What a model's rows are called in the log (apps above this one, named by label: nothing is imported).
TARGET_TYPES = {
    "hosts.host": "host",
    "pools.storagepool": "pool",
    "volumes.volume": "volume",
    "volumes.upload": "upload",
    "jobs.job": "job",
    "auth.user": "user",
    "accounts.team": "team",
}


def describe(obj: models.Model) -> tuple[str, str, str]:
    """(target_type, target_id, target text) of a model instance: ("pool", "7", "pool vms on kvm1").

    A volume is named by its pool and name ("7/a.img"), as a job on it is: the row may not exist yet
    (a create) or any more (a delete)."""
    label = obj._meta.label_lower
    kind = TARGET_TYPES.get(label, obj._meta.model_name)
    text = str(obj)
    if label == "volumes.volume":
        return kind, f"{obj.pool_id}/{obj.name}", f"volume {obj.name} in pool {obj.pool}"
    if not text.lower().startswith(kind):
        text = f"{kind} {text}"
    return kind, str(obj.pk), text


def address(request: HttpRequest | None) -> str | None:
    """The client's address as accounts.throttle sees it (X-Forwarded-For only with BEHIND_PROXY), if it is one."""
    if request is None:
        return None
    value = client_ip(request)
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def record(action: str, *, request: HttpRequest | None = None, user=None, username: str = "",
           target: models.Model | str | None = None, target_type: str = "", target_id: str = "",
           outcome: str = AuditRecord.Outcome.OK, detail: dict[str, Any] | None = None,
           team: str = "") -> AuditRecord:
    """Append one record. The user and the client address come from the request when one is given
    (a username given instead of a user, as a failed login's typed name, is not replaced by the request's);
    target is a model instance (type, id and text derived from it) or the text itself."""
    if user is None and request is not None and not username:
        user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    if isinstance(target, models.Model):
        derived_type, derived_id, target = describe(target)
        target_type, target_id = target_type or derived_type, target_id or derived_id
    return AuditRecord.objects.create(
        action=action, user=user, username=user.get_username() if user is not None else username,
        team=team, target_type=target_type, target_id=str(target_id)[:255], target=(target or "")[:500],
        outcome=outcome, client_ip=address(request), detail=detail or {},
    )


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def changes(form) -> dict[str, dict[str, Any]]:
    """What a valid (model) form changed: {field: {"from": old, "to": new}}, as plain JSON values."""
    return {name: {"from": _plain(form.get_initial_for_field(form.fields[name], name)),
                   "to": _plain(form.cleaned_data.get(name))}
            for name in form.changed_data}


# The request being answered, for refusals recorded deep in a form's checks, where no request is at hand
# (RequestMiddleware sets it; jobs and commands have none).
_request: ContextVar[HttpRequest | None] = ContextVar("audited_request", default=None)


class RequestMiddleware:
    """Keeps the request at hand for refused() while it is answered. Synchronous, beside the other innermost
    synchronous middleware (settings.MIDDLEWARE), so it costs no thread hop."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_request() -> HttpRequest | None:
    """The request being answered (RequestMiddleware), or None in a job, a command or a test's direct call."""
    return _request.get()


def refused(action: str, reason: str, *, target: str = "", target_type: str = "") -> AuditRecord:
    """Record an attempt that a confinement rule refused (a host URI, a pool's directory or device, a host file
    to import, outside what the app may touch), with who tried and from where: a form answers with the reason,
    and the audit log keeps it (outcome "refused")."""
    return record(action, request=current_request(), target=target, target_type=target_type,
                  outcome=AuditRecord.Outcome.REFUSED, detail={"reason": reason})
