"""Views of volume operations: validate the form, launch the job (volumes/operations.py, shared with the REST
API), show its page.

No libvirt call happens here: the job does the work and refreshes the inventory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET

from accounts import access
from accounts.roles import member_required
from jobs.models import Job
from jobs.runner import JobError
from pools.models import StoragePool

from . import operations
from .forms import BACKING_OPTIONS, backing_choices
from .models import Volume


def _volume(request: HttpRequest, pk: int, action: str) -> Volume:
    """The volume if the user may see it (404 otherwise) and may do this to it (403 otherwise)."""
    volume = get_object_or_404(Volume.objects.visible_to(request.user).select_related("pool", "pool__host"), pk=pk)
    access.require(request.user, action, volume.pool)
    return volume


def _pool(request: HttpRequest, pk: int, action: str) -> StoragePool:
    pool = get_object_or_404(StoragePool.objects.visible_to(request.user).select_related("host"), pk=pk)
    access.require(request.user, action, pool)
    return pool


def _start(request: HttpRequest, form: forms.Form, launcher: Callable[..., Job]) -> Job | None:
    """The job launcher(user=, request=) makes (operations.launch or tools_ops.start, its arguments bound); a
    refusal (queue down, volume busy, a team's quota now full) becomes a form error and nothing is lost."""
    try:
        started = launcher(user=request.user, request=request)
    except JobError as exc:
        form.add_error(None, str(exc))
        return None
    for warning in getattr(form, "warnings", []):
        messages.warning(request, warning)
    return started


def _page(request: HttpRequest, op: str, form: forms.Form, pool: StoragePool, volume: Volume | None = None,
          **extra) -> HttpResponse:
    context = {"op": op, "form": form, "pool": pool, "volume": volume, **extra}
    if volume is not None and op in ("delete", "wipe"):
        context["users"] = list(volume.users())  # as of the last sync; the job checks libvirt again
        # the list goes into one translated sentence ("In use by … as of the last sync.")
        context["in_use_by"] = format_html_join(", ", "VM <strong>{}</strong>{}", (
            (disk.domain, f" ({disk.target})" if disk.target else "") for disk in context["users"]))
    return render(request, "volumes/volume_op.html", context, status=400 if form.errors else 200)


@member_required
@require_GET
def backing_options(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """The backing volume picker's options for what was typed in its search box (htmx)."""
    pool = _pool(request, pool_pk, "view")
    query = request.GET.get("backing_search", "").strip()
    options = backing_choices(pool, request.user, search=query, count=BACKING_OPTIONS + 1)  # one more: are there more?
    return render(request, "volumes/_backing_options.html",
                  {"options": options[:BACKING_OPTIONS], "query": query, "more": len(options) > BACKING_OPTIONS})


@member_required
def volume_create(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _pool(request, pool_pk, "create")
    form = operations.bind("create", request.POST or None, user=request.user, pool=pool)
    if request.method == "POST" and form.is_valid():
        if job := _start(request, form, functools.partial(operations.launch, "create", form, pool=pool)):
            return redirect(job)
    return _page(request, "create", form, pool)


def _volume_op(request: HttpRequest, op: str, pk: int) -> HttpResponse:
    """The common shape of an operation on one volume: valid form -> job -> job page; else the form again."""
    volume = _volume(request, pk, operations.ACTIONS[op])
    choices = operations.wipe_choices(volume) if op == "wipe" else None
    form = operations.bind(op, request.POST or None, user=request.user, volume=volume, choices=choices)
    if request.method == "POST" and form.is_valid():
        if job := _start(request, form, functools.partial(operations.launch, op, form, volume=volume)):
            return redirect(job)
    return _page(request, op, form, volume.pool, volume, **({"choices": choices} if op == "wipe" else {}))


@member_required
def volume_clone(request: HttpRequest, pk: int) -> HttpResponse:
    return _volume_op(request, "clone", pk)


@member_required
def volume_resize(request: HttpRequest, pk: int) -> HttpResponse:
    return _volume_op(request, "resize", pk)


@member_required
def volume_delete(request: HttpRequest, pk: int) -> HttpResponse:
    return _volume_op(request, "delete", pk)


@member_required
def volume_wipe(request: HttpRequest, pk: int) -> HttpResponse:
    return _volume_op(request, "wipe", pk)
