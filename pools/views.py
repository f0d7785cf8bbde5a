from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django_htmx.http import push_url

from accounts.models import Team
from accounts.roles import admin_required, is_admin, member_required
from audit.log import changes, record
from hosts import status
from hosts.models import Host, vm_names_by_volume
from jobs import progress
from jobs.models import Job
from jobs.runner import JobError
from virtstorage.virt import pools as vpools

from . import lifecycle
from .define_forms import TYPE_DESCRIPTIONS, TYPE_FIELDS
from .forms import PolicyForm
from .models import StoragePool
from .tasks import LIFECYCLE_KINDS

# What the volume table may sort on: URL value -> ORDER BY (name last keeps the order stable; a descending sort
# breaks ties by name descending too, so that one index of volumes/models.py, read backwards, serves it).
VOLUME_SORTS = {
    "name": ("name",),
    "-name": ("-name",),
    "capacity": ("capacity", "name"),
    "-capacity": ("-capacity", "-name"),
    "allocation": ("allocation", "name"),
    "-allocation": ("-allocation", "-name"),
    "format": ("format", "name"),
    "-format": ("-format", "-name"),
}
VOLUMES_PER_PAGE = 50
# Sortable columns: (field, label, css class, first click sorts descending?)
VOLUME_COLUMNS = [
    ("name", gettext_lazy("Name"), "", False),
    ("format", gettext_lazy("Format"), "", False),
    ("capacity", gettext_lazy("Virtual size"), "num", True),
    ("allocation", gettext_lazy("Disk size"), "num", True),
]


def _columns(query: str, sort: str) -> list[dict]:
    """Header links: clicking the sorted column flips its direction."""
    columns = []
    for field, label, css, descending_first in VOLUME_COLUMNS:
        if sort == field:
            target, arrow = f"-{field}", " ▲"
        elif sort == f"-{field}":
            target, arrow = field, " ▼"
        else:
            target, arrow = (f"-{field}" if descending_first else field), ""
        columns.append({"label": label, "css": css, "arrow": arrow, "query": urlencode({"q": query, "sort": target})})
    return columns


@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Every host the user may see, each with the pools the user may see and their usage."""
    pools = Prefetch("pools", queryset=StoragePool.objects.visible_to(request.user))
    hosts = Host.objects.visible_to(request.user).prefetch_related(pools)  # pools in host, then name order
    return render(request, "hosts/dashboard.html", {"hosts": hosts})


def _visible_pool(request: HttpRequest, pk: int) -> StoragePool:
    """The pool if the user may see it (404 otherwise: another team's pool is not there for them)."""
    return get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"), pk=pk)


def _visible_part(request: HttpRequest, pk: int) -> StoragePool | None:
    """The pool for a part of its page; None (answer 204, "nothing to change") when htmx asks for it again after a
    delete or undefine ended (the card then sends the page to the host), rather than an error the page would show
    for a moment. The same for any pool the user may not see, so the answer tells nothing of other teams' pools;
    a plain request gets the 404."""
    try:
        return _visible_pool(request, pk)
    except Http404:
        if request.htmx:
            return None
        raise


def _volume_page(request: HttpRequest, pool: StoragePool) -> dict:
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "name")
    if sort not in VOLUME_SORTS:
        sort = "name"
    volumes = pool.volumes.table_rows()
    if query:
        volumes = volumes.filter(name__icontains=query)
    ordered = volumes.order_by(*VOLUME_SORTS[sort])
    # PostgreSQL: the page's keys first (the sort index alone, see volumes/models.py), then only its rows; a page
    # deep in 10,000 volumes read every row above it, 6 ms on a quiet server, 40 under the load test. SQLite reads
    # rows in index order as cheaply as keys: there the second query would only add ~1 ms.
    keys_first = connection.features.supports_covering_indexes
    paginator = Paginator(ordered.values("pk") if keys_first else ordered, VOLUMES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = list(ordered.filter(pk__in=page.object_list) if keys_first else page.object_list)
    users = vm_names_by_volume(pool.host_id, pool.name, page.object_list)
    # The teams of the page's rows alone: a join in the table's query made SQLite join every row it skips to
    # reach a deep page (the last page sorted by disk size, 10,000 volumes: 36 ms, with the join 50).
    team_ids = {volume.team_id for volume in page.object_list if volume.team_id}
    teams = dict(Team.objects.filter(pk__in=team_ids).values_list("pk", "name")) if team_ids else {}
    for volume in page.object_list:
        volume.vm_names, volume.team_name = users[volume.pk], teams.get(volume.team_id, "")
    return {"pool": pool, "page": page, "q": query, "sort": sort, "columns": _columns(query, sort),
            "base_query": urlencode({"q": query, "sort": sort})}


@member_required
def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = _visible_pool(request, pk)
    context = _volume_page(request, pool)
    context["active_jobs"] = Job.objects.active().filter(pool=pool).exclude(kind__in=LIFECYCLE_KINDS)[:20]
    context.update(_card_context(request, pool))
    return render(request, "pools/pool_detail.html", context)


@member_required
def pool_volumes(request: HttpRequest, pk: int) -> HttpResponse:
    """The volume table alone: htmx swaps it on search, sort and page. A search puts itself in the address bar
    (sorts and pages do by their links), so a reload or a shared link shows the same rows."""
    if (pool := _visible_part(request, pk)) is None:
        return HttpResponse(status=204)
    response = render(request, "pools/_volume_table.html", context := _volume_page(request, pool))
    if request.headers.get("HX-Trigger") == "volume-search":
        push_url(response, f"{pool.get_absolute_url()}?{context['base_query']}")
    return response


# -- lifecycle -------------------------------------------------------------------

def _lifecycle_job(pool: StoragePool) -> Job | None:
    return Job.objects.active().filter(pool=pool, kind__in=LIFECYCLE_KINDS).first()


def _card_context(request: HttpRequest, pool: StoragePool, job: Job | None = None) -> dict:
    """The pool card: state, the running (or just finished) lifecycle job, capacity, policy."""
    job = job or _lifecycle_job(pool)
    context = {"pool": pool, "job": job, "snap": progress.snapshot(job) if job else None}
    if is_admin(request.user):
        context["policy_form"] = PolicyForm(instance=pool)
    return context


def _card_response(request: HttpRequest, pool: StoragePool, job: Job | None = None, *,
                   form: PolicyForm | None = None) -> HttpResponse:
    context = _card_context(request, pool, job)
    if form is not None:
        context["policy_form"] = form
    return render(request, "pools/_pool_card.html", context)


class CardQuery(forms.Form):
    """The pool card's query: ?job=N, the lifecycle job whose end reloaded it."""

    job = forms.IntegerField(min_value=1, required=False)


@member_required
def pool_card(request: HttpRequest, pk: int) -> HttpResponse:
    """The pool card alone: htmx reloads it when a lifecycle job ends."""
    query = CardQuery(request.GET)
    if not query.is_valid():
        raise BadRequest("job must be a job's number.")
    job = Job.objects.visible_to(request.user).filter(pk=query.cleaned_data["job"] or 0).first()
    pool = StoragePool.objects.visible_to(request.user).select_related("host").filter(pk=pk).first()
    if pool is None:
        # Deleted, undefined, or a transient pool that stopped: go to its host.
        if job is not None and job.host_id:
            messages.info(request, job.result or job.error or _("The pool is gone."))
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("hosts:detail", args=[job.host_id])
            return response
        raise Http404("This pool is not in the inventory any more.")
    return _card_response(request, pool, job)


@member_required
def pool_live(request: HttpRequest, pk: int) -> HttpResponse:
    """libvirt's view of the pool as the last sync recorded it: no page waits on a host.

    "Refresh from libvirt" starts the pool's refresh job (it rescans, then syncs the pool).
    """
    if (pool := _visible_part(request, pk)) is None:
        return HttpResponse(status=204)
    live = None
    if pool.synced_at is not None:
        live = vpools.PoolLiveView(
            state="running" if pool.is_active else "inactive", capacity=pool.capacity, allocation=pool.allocation,
            available=pool.available, autostart=pool.autostart, persistent=pool.persistent,
            volume_count=pool.volume_count if pool.is_active else None, inactive_xml=pool.xml)
    return render(request, "pools/_live_view.html",
                  {"pool": pool, "live": live, "host_problem": status.unavailable_reason(pool.host)})


def _launch_lifecycle(request: HttpRequest, start) -> Job | None:
    """Start a lifecycle job (start(): one of pools.lifecycle's), or say why not (another job on the pool,
    queue down)."""
    try:
        return start()
    except JobError as exc:
        messages.error(request, str(exc))
        return None


@require_POST
@admin_required
def pool_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    if action not in lifecycle.QUICK_ACTIONS:
        raise Http404("No such pool action.")
    job = _launch_lifecycle(request, lambda: lifecycle.quick(pool, action, user=request.user, request=request))
    if request.htmx:
        return _card_response(request, pool, job)
    return redirect(pool)


@admin_required
def pool_build(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    form = lifecycle.build_form(request.POST if request.method == "POST" else None, pool)
    if request.method == "POST" and form.is_valid():
        if _launch_lifecycle(request, lambda: lifecycle.build(pool, form, user=request.user, request=request)):
            return redirect(pool)
    return render(request, "pools/pool_build.html", {"pool": pool, "form": form,
                                                     "formatting_types": vpools.FORMATTING_TYPES})


@admin_required
def pool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    form = lifecycle.delete_form(request.POST if request.method == "POST" else None, pool)
    if request.method == "POST" and form.is_valid():
        if _launch_lifecycle(request, lambda: lifecycle.delete(pool, form, user=request.user, request=request)):
            return redirect(pool)
    return render(request, "pools/pool_delete.html", {"pool": pool, "form": form})


@require_POST
@admin_required
def pool_policy(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    form = PolicyForm(request.POST, instance=pool)
    if form.is_valid():
        form.save()
        record("pool.policy", request=request, target=pool, detail=changes(form))
        messages.success(request, _("Saved the capacity policy of %(pool)s.") % {"pool": pool.name})
        pool.refresh_from_db()
        form = None
    if request.htmx:
        return _card_response(request, pool, form=form)
    if form is not None:
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
    return redirect(pool)


# -- define ------------------------------------------------------------------------

@admin_required
def pool_define(request: HttpRequest, host_pk: int) -> HttpResponse:
    """Define a pool from a per-type form or pasted XML: preview first (the XML only), then define, a job.

    The pool types offered are those the host's last check or sync recorded: the page never asks libvirt.
    """
    host = get_object_or_404(Host, pk=host_pk)
    supported = host.pool_type_support()
    if supported is None:
        return render(request, "pools/pool_define.html", {"host": host, "unrecorded": True})
    pool_type = request.GET.get("type") or request.POST.get("type") or "dir"
    if pool_type not in TYPE_FIELDS and pool_type != "xml":
        raise Http404("No form for that pool type.")
    data = request.POST if request.method == "POST" else None
    unavailable = pool_type != "xml" and not _supports(supported, pool_type)
    form = lifecycle.define_form(data, host, pool_type, supported)
    preview = ""
    if data is not None and not unavailable and form.is_valid():
        preview = form.pool_xml()
        if request.POST.get("action") == "define" and (job := _define(request, host, form)):
            return redirect(job)
    types = [{"type": t, "description": TYPE_DESCRIPTIONS[t],
              "supported": _supports(supported, t)} for t in TYPE_FIELDS]
    return render(request, "pools/pool_define.html", {
        "host": host, "form": form, "pool_type": pool_type, "types": types, "preview": preview,
        "unavailable": unavailable, "host_problem": status.unavailable_reason(host),
    })


def _supports(supported: dict[str, vpools.PoolTypeSupport], pool_type: str) -> bool:
    found = supported.get(pool_type)
    return found is not None and found.supported


def _define(request: HttpRequest, host: Host, form) -> Job | None:
    """Launch the define job (pools.lifecycle.start_define, as the REST API does). A host recorded unreachable
    (or disabled for its URI), a define of that name already under way and a queue that is down are refused at
    the form at once."""
    lifecycle.refuse_unreachable(form, host)
    if form.errors:
        return None
    try:
        return lifecycle.start_define(host, form.pool_xml(), form.cleaned_data.get("start_now", False),
                                      user=request.user, request=request)
    except JobError as exc:
        form.add_error(None, str(exc))
        return None
