"""A user's own notifications: the list, the bell htmx polls, mark-all-read and open (mark read, then go)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from .links import is_local
from .models import Notification

PAGE_SIZE = 50
HTMX_STOP_POLLING = 286


@require_safe
def notification_list(request: HttpRequest) -> HttpResponse:
    rows = Notification.objects.filter(user=request.user)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "notifications/list.html", {"page": page})


@require_safe
@login_not_required  # answered here: a logged-out tab's poll must not swap the login page into the header
def bell(request: HttpRequest) -> HttpResponse:
    """The bell alone (GET only, changes nothing): htmx polls it from every page."""
    if not request.user.is_authenticated:
        if request.htmx:  # a static bell that stops the polling
            return render(request, "notifications/_bell.html", {"stopped": True}, status=HTMX_STOP_POLLING)
        return redirect_to_login(request.get_full_path())
    return render(request, "notifications/_bell.html")


@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    Notification.objects.filter(user=request.user).mark_read()
    return redirect("notifications:list")


@require_POST
def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark read and go to its link: only a path in this site, else back to the list."""
    row = get_object_or_404(Notification, pk=pk, user=request.user)
    if row.read_at is None:
        Notification.objects.filter(pk=row.pk, read_at__isnull=True).update(read_at=timezone.now())
    return redirect(row.url if row.url and is_local(row.url) else "notifications:list")

