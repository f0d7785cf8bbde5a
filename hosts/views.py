from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import admin_required, is_admin, member_required
from jobs.runner import JobError

from . import operations
from .forms import HostDeleteForm, HostForm
from .models import Host


@member_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host.objects.visible_to(request.user), pk=pk)
    context = _status_context(host, None)
    context["pools"] = host.pools.visible_to(request.user).order_by("name")
    if is_admin(request.user):  # who registered what is admins' business
        context["same_libvirt"] = [other.name for other in host.same_libvirt()]
    return render(request, "hosts/host_detail.html", context)


@member_required
def host_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status card alone: polled by htmx after a connection test."""
    host = get_object_or_404(Host.objects.visible_to(request.user), pk=pk)
    return render(request, "hosts/_status.html", _status_context(host, request.GET.get("since")))


def _status_context(host: Host, since: str | None) -> dict:
    """`since` is the last check time when a test was asked for: poll until a newer one lands."""
    checked = host.last_checked_at.isoformat() if host.last_checked_at else "never"
    return {"host": host, "since": since, "checking": since is not None and checked == since}


@admin_required
def host_create(request: HttpRequest) -> HttpResponse:
    form = HostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        host, _job, refusal = operations.add(form, user=request.user, request=request)
        messages.success(request, _("Added %(host)s. Checking the connection and syncing it now.")
                         % {"host": host.name})
        if refusal:
            messages.error(request, refusal)
        return redirect(host)
    return render(request, "hosts/host_form.html", {"form": form})


@admin_required
def host_edit(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    form = HostForm(request.POST or None, instance=host)
    if request.method == "POST" and form.is_valid():
        operations.edit(form, request=request)
        messages.success(request, _("Saved %(host)s.") % {"host": host.name})
        return redirect(host)
    return render(request, "hosts/host_form.html", {"form": form, "host": host})


@admin_required
def host_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget a host. Nothing on the host itself is touched."""
    host = get_object_or_404(Host, pk=pk)
    if request.method == "POST":
        if not HostDeleteForm(request.POST, host=host).is_valid():
            messages.error(request, _("Type the host's name to confirm."))
        else:
            operations.forget(host, request=request)
            messages.success(request, _("Removed %(host)s from virtstorage. Nothing on the host was changed.")
                             % {"host": host.name})
            return redirect("dashboard")
    return render(request, "hosts/host_confirm_delete.html", {"host": host})


@require_POST
@admin_required
def host_test(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    since = host.last_checked_at.isoformat() if host.last_checked_at else "never"
    try:
        operations.start_check(host, request=request)
    except JobError as exc:
        messages.error(request, str(exc))
        since = None
    if request.htmx:
        return render(request, "hosts/_status.html", _status_context(host, since))
    return redirect(host)


@require_POST
@member_required
def host_sync(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host.objects.visible_to(request.user), pk=pk)
    job = _start_sync(request, host)
    if job is None:
        return redirect(_safe_next(request) or host.get_absolute_url())
    return redirect(job)


def _safe_next(request: HttpRequest) -> str | None:
    """The `next` URL of a form, only when it points into this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return None


def _start_sync(request: HttpRequest, host: Host, pools: list[str] | None = None):
    try:
        return operations.start_sync(host, user=request.user, request=request, pools=pools)
    except JobError as exc:
        messages.error(request, str(exc))
        return None
