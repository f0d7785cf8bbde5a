"""The audit log for admins: a filtered table, newest first, and the same rows as CSV. Nothing here writes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.roles import admin_required

from . import pages
from .export import csv_response
from .filters import KNOWN_ACTIONS, KNOWN_TARGET_TYPES, AuditFilter
from .models import AuditRecord


def _filtered(request: HttpRequest) -> AuditFilter:
    return AuditFilter(request.GET, queryset=AuditRecord.objects.all())


@require_safe
@admin_required
def audit_list(request: HttpRequest) -> HttpResponse:
    found = _filtered(request)
    size = pages.page_size(request.GET.get("per_page"))
    if found.is_valid():
        page = pages.keyset_page(found.qs, size=size, before=request.GET.get("before"),
                                 after=request.GET.get("after"))
    else:
        page = pages.Page(size=size)
    return render(request, "audit/audit_list.html", {
        "filter": found, "page": page, "page_sizes": pages.PAGE_SIZES,
        "usernames": get_user_model().objects.order_by("username").values_list("username", flat=True),
        "actions": KNOWN_ACTIONS, "target_types": KNOWN_TARGET_TYPES,
    }, status=200 if found.is_valid() else 400)


@require_safe
@admin_required
def audit_export(request: HttpRequest) -> HttpResponse:
    """Every record the filters select (not only a page's), as CSV, streamed."""
    found = _filtered(request)
    if not found.is_valid():
        return HttpResponseBadRequest("; ".join(f"{name}: {' '.join(errors)}" for name, errors in found.errors.items()),
                                      content_type="text/plain; charset=utf-8")
    return csv_response(request, found.qs)
