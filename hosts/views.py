from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.roles import admin_required, member_required
from audit.log import changes, record
from jobs.progress import broker_available
from jobs.runner import JobError, launch

from .forms import HostForm
from .models import Host
from .tasks import SYNC_JOB, check_host_task


@member_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host.objects.visible_to(request.user), pk=pk)
    context = _status_context(host, None)
    context["pools"] = host.pools.visible_to(request.user).order_by("name")
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
        host = form.save()
        record("host.create", request=request, target=host, detail={"uri": host.uri})
        messages.success(request, f"Added {host.name}. Checking the connection and syncing it now.")
        _start_sync(request, host)
        return redirect(host)
    return render(request, "hosts/host_form.html", {"form": form})


@admin_required
def host_edit(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    form = HostForm(request.POST or None, instance=host)
    if request.method == "POST" and form.is_valid():
        form.save()
        record("host.edit", request=request, target=host, detail=changes(form))
        messages.success(request, f"Saved {host.name}.")
        return redirect(host)
    return render(request, "hosts/host_form.html", {"form": form, "host": host})


@admin_required
def host_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget a host. Nothing on the host itself is touched."""
    host = get_object_or_404(Host, pk=pk)
    if request.method == "POST":
        if request.POST.get("confirm_name") != host.name:
            messages.error(request, "Type the host's name to confirm.")
        else:
            with transaction.atomic():  # recorded while the row (and its id) is there, removed with it
                record("host.delete", request=request, target=host, detail={"uri": host.uri})
                host.delete()
            messages.success(request, f"Removed {host.name} from virtstorage. Nothing on the host was changed.")
            return redirect("dashboard")
    return render(request, "hosts/host_confirm_delete.html", {"host": host})


@require_POST
@admin_required
def host_test(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(Host, pk=pk)
    since = host.last_checked_at.isoformat() if host.last_checked_at else "never"
    if not broker_available():
        messages.error(request, "Could not test the connection: the job queue (Redis) is not reachable.")
        since = None
    else:
        check_host_task.apply_async((host.pk,), queue=host.queue or None)
    record("host.test", request=request, target=host, outcome="refused" if since is None else "started")
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
        return launch(SYNC_JOB, kind="sync", user=request.user, host=host, params={"pools": pools}, request=request)
    except JobError as exc:
        messages.error(request, str(exc))
        return None
