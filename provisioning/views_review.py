"""The approval queue: admins see every pending request, operators those of their teams (in pools they may
use); anyone else gets a 403. Approve or reject one or many at once, with a comment."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import member_required
from audit.pages import PAGE_SIZES, page_size

from . import quota, rules, services
from .filters import QueueFilter
from .forms import ReviewForm
from .models import ProvisioningRequest
from .queue_rows import QueueRow


def _approver(request: HttpRequest) -> None:
    if not rules.is_approver(request.user):
        raise PermissionDenied(_("The approval queue is for admins and the operators of a team."))


@member_required
def queue(request: HttpRequest) -> HttpResponse:
    _approver(request)
    pending = (rules.approvable(request.user).filter(state=ProvisioningRequest.State.PENDING)
               .select_related("team", "pool", "pool__host", "requested_by", "backing").order_by("created_at", "pk"))
    found = QueueFilter(request.GET or None, queryset=pending, user=request.user)
    page = Paginator(found.qs, page_size(request.GET.get("per_page"))).get_page(request.GET.get("page"))
    requests = list(page.object_list)
    # One ledger for the page: the queries do not grow with the number of rows (bench/approvals_bench.py).
    rows = [QueueRow(req, impact, rules.own_request(request.user, req))
            for req, impact in zip(requests, quota.impacts(requests), strict=True)]
    return render(request, "provisioning/queue.html", {
        "filter": found, "rows": rows, "page": page, "page_sizes": PAGE_SIZES,
        "form": ReviewForm(user=request.user), "query": request.GET.urlencode()})


@require_POST
@member_required
def review(request: HttpRequest) -> HttpResponse:
    """One POST decides every ticked request, each in its own locked transaction (services.review)."""
    _approver(request)
    form = ReviewForm(request.POST, user=request.user)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
    else:
        approve = form.cleaned_data["decision"] == "approve"
        for req in form.cleaned_data["requests"]:
            outcome = services.review(req.pk, request.user, approve=approve, comment=form.cleaned_data["comment"],
                                      request=request)
            (messages.success if outcome.ok else messages.error)(request, outcome.message)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "requests:queue"
    return redirect(back)
