from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from virtstorage.accounts.roles import member_required
from virtstorage.jobs.models import Job

from .models import StoragePool

# What the volume table may sort on: URL value -> ORDER BY (name last keeps the order stable).
VOLUME_SORTS = {
    "name": ("name",),
    "-name": ("-name",),
    "capacity": ("capacity", "name"),
    "-capacity": ("-capacity", "name"),
    "allocation": ("allocation", "name"),
    "-allocation": ("-allocation", "name"),
    "format": ("format", "name"),
    "-format": ("-format", "name"),
}
VOLUMES_PER_PAGE = 50
# Sortable columns: (field, label, css class, first click sorts descending?)
VOLUME_COLUMNS = [
    ("name", "Name", "", False),
    ("format", "Format", "", False),
    ("capacity", "Virtual size", "num", True),
    ("allocation", "Disk size", "num", True),
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


def _volume_page(request: HttpRequest, pool: StoragePool) -> dict:
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "name")
    if sort not in VOLUME_SORTS:
        sort = "name"
    volumes = pool.volumes.only("id", "name", "format", "type", "capacity", "allocation", "path")
    if query:
        volumes = volumes.filter(name__icontains=query)
    page = Paginator(volumes.order_by(*VOLUME_SORTS[sort]), VOLUMES_PER_PAGE).get_page(request.GET.get("page"))
    return {"pool": pool, "page": page, "q": query, "sort": sort, "columns": _columns(query, sort),
            "base_query": urlencode({"q": query, "sort": sort})}


@member_required
def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    context = _volume_page(request, pool)
    context["active_jobs"] = Job.objects.active().filter(pool=pool)[:20]
    return render(request, "pools/pool_detail.html", context)


@member_required
def pool_volumes(request: HttpRequest, pk: int) -> HttpResponse:
    """The volume table alone: htmx swaps it on search, sort and page."""
    pool = get_object_or_404(StoragePool.objects.select_related("host"), pk=pk)
    return render(request, "pools/_volume_table.html", _volume_page(request, pool))
