"""The requester's pages: my requests, a new request (from the list or a pool page), a request with its timeline
and live job, edit, withdraw, retry. Reviewing is in views_review.py.

Every view needs a role (member_required); a request the user may not see is a 404, a step they may not take
a 403; every POST passes Django's CSRF check.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import access
from accounts.roles import member_required
from jobs import progress
from jobs.models import Job
from pools.models import PoolGrant, StoragePool

from . import rules, services
from .forms import RequestForm
from .models import ProvisioningRequest


def _visible(request: HttpRequest, pk: int) -> ProvisioningRequest:
    """The request if the user may see it (404 otherwise), brought up to date with its job."""
    # Only the relations every request has: reviewer, volume and job are empty until later, and cost no query
    # then; with them joined too, PostgreSQL spent 3-9 ms planning this one-row query (the load test).
    req = get_object_or_404(rules.visible(request.user).select_related("team", "pool__host", "requested_by"), pk=pk)
    return services.catch_up(req)


def _state_context(request: HttpRequest, req: ProvisioningRequest) -> dict:
    """What the live part of the request page shows: state, job (live when the user may watch it), actions."""
    user = request.user
    job = req.job if req.state == ProvisioningRequest.State.PROVISIONING else None
    job_visible = bool(req.job_id) and Job.objects.visible_to(user).filter(pk=req.job_id).exists()
    reviewer = rules.may_review(user, req)
    return {"req": req, "snap": progress.snapshot(job) if job else None, "job_visible": job_visible,
            "watch": job is not None and job_visible and job.is_active,
            "events": req.events.select_related("actor"), "own": rules.own_request(user, req),
            "may_retry": req.state == ProvisioningRequest.State.FAILED and (rules.own_request(user, req) or reviewer)}


@member_required
def request_list(request: HttpRequest) -> HttpResponse:
    mine = (ProvisioningRequest.objects.filter(requested_by=request.user)
            .select_related("team", "pool", "pool__host", "volume"))
    page = Paginator(mine, 50).get_page(request.GET.get("page"))
    return render(request, "provisioning/request_list.html", {"page": page})


@member_required
def request_pick_pool(request: HttpRequest) -> HttpResponse:
    """A new request starts with its pool: the running pools the user may file requests in."""
    pools = [pool for pool in StoragePool.objects.visible_to(request.user).filter(state=StoragePool.State.ACTIVE)
             .select_related("host") if access.may(request.user, "request", pool)]
    return render(request, "provisioning/pick_pool.html", {"pools": pools})


def _requesting_pool(request: HttpRequest, pool_pk: int) -> StoragePool:
    pool = get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"), pk=pool_pk)
    access.require(request.user, "request", pool)
    if not rules.requesting_teams(request.user, pool).exists():
        raise PermissionDenied(_("None of your teams may use pool %(pool)s.") % {"pool": pool.name})
    return pool


@member_required
def request_new(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _requesting_pool(request, pool_pk)
    form = RequestForm(request.POST or None, pool=pool, user=request.user)
    if request.method == "POST" and form.is_valid():
        req, note = services.submit(user=request.user, pool=pool, data=form.cleaned_data, request=request)
        for warning in form.warnings:
            messages.warning(request, warning)
        messages.success(request, _("Request #%(pk)s filed. %(note)s") % {"pk": req.pk, "note": note})
        return redirect(req)
    return render(request, "provisioning/request_form.html", {"form": form, "pool": pool, "grants": _grants(form)},
                  status=400 if form.errors else 200)


@member_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    req = _visible(request, pk)
    context = _state_context(request, req)
    context["may_review"] = (req.state == ProvisioningRequest.State.PENDING and not context["own"]
                             and rules.may_review(request.user, req))
    return render(request, "provisioning/request_detail.html", context)


@member_required
def request_state(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the request page alone: htmx reloads it when the job's stream ends, or polls it."""
    req = _visible(request, pk)
    return render(request, "provisioning/_request_state.html", _state_context(request, req))


def _grants(form: RequestForm) -> list[PoolGrant]:
    """The grants of the pool to the teams the form offers: each team's quota there, shown before one asks."""
    return list(PoolGrant.objects.filter(pool=form.pool, team__in=form.fields["team"].queryset)
                .select_related("team").order_by("team__name"))


def _own_pending(request: HttpRequest, pk: int) -> ProvisioningRequest:
    req = _visible(request, pk)
    if not rules.own_request(request.user, req):
        raise PermissionDenied(_("Only the requester may change or withdraw a request."))
    return req


@member_required
def request_edit(request: HttpRequest, pk: int) -> HttpResponse:
    req = _own_pending(request, pk)
    if req.state != ProvisioningRequest.State.PENDING:
        messages.error(request, _("Request #%(pk)s is %(state)s: it cannot change any more.")
                       % {"pk": req.pk, "state": req.get_state_display().lower()})
        return redirect(req)
    form = RequestForm(request.POST or None, pool=req.pool, user=request.user, instance=req)
    if request.method == "POST" and form.is_valid():
        try:
            req, note = services.edit(req.pk, user=request.user, data=form.cleaned_data, changes=form.changes(),
                                      request=request)
            messages.success(request, _("Request #%(pk)s changed. %(note)s") % {"pk": req.pk, "note": note})
        except services.Refused as exc:
            messages.error(request, str(exc))
        return redirect(req)
    return render(request, "provisioning/request_form.html", {"form": form, "pool": req.pool, "req": req,
                                                              "grants": _grants(form)},
                  status=400 if form.errors else 200)


@require_POST
@member_required
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    req = _own_pending(request, pk)
    try:
        services.withdraw(req.pk, user=request.user, request=request)
        messages.success(request, _("Request #%(pk)s withdrawn.") % {"pk": req.pk})
    except services.Refused as exc:
        messages.error(request, str(exc))
    return redirect(req)


@require_POST
@member_required
def request_retry(request: HttpRequest, pk: int) -> HttpResponse:
    req = _visible(request, pk)
    if not (rules.own_request(request.user, req) or rules.may_review(request.user, req)):
        raise PermissionDenied(_("Only the requester or an approver may retry a request."))
    outcome = services.retry(req.pk, user=request.user, request=request)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    return redirect(req)
