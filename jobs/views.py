from __future__ import annotations

import json
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import translation
from django.views.decorators.http import require_POST

from accounts.roles import is_admin, is_member, member_required
from accounts.tokens import accepts_token

from . import progress
from .cancel import request_cancel
from .models import Job

SSE_KEEPALIVE_SECONDS = 15


def _visible_job(request: HttpRequest, pk: int) -> Job:
    return get_object_or_404(Job.objects.visible_to(request.user).select_related("host", "pool"), pk=pk)


@member_required
def job_list(request: HttpRequest) -> HttpResponse:
    scope = request.GET.get("scope", "mine")
    jobs = Job.objects.select_related("host", "created_by")
    if scope == "all" and is_admin(request.user):
        pass
    else:
        scope = "mine"
        jobs = jobs.filter(created_by=request.user)
    state = request.GET.get("state", "")
    if state not in Job.State.values:
        state = ""
    if state:
        jobs = jobs.filter(state=state)
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    template = "jobs/_job_table.html" if request.htmx else "jobs/job_list.html"  # htmx: the table reloads itself
    return render(request, template, {"page": page, "scope": scope, "state": state, "states": Job.State.choices,
                                      "any_active": any(job.is_active for job in page)})


@accepts_token
@member_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The job page; its snapshot as JSON for scripts (``Accept: application/json``); its details and log alone
    for htmx (the page reloads them while the job runs)."""
    job = _visible_job(request, pk)
    snap = progress.snapshot(job)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(snap)
    template = "jobs/_job_facts.html" if request.htmx else "jobs/job_detail.html"
    return render(request, template, {"job": job, "snap": snap})


@accepts_token
@member_required
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress partial, for polling where server-sent events do not get through."""
    job = _visible_job(request, pk)
    return render(request, "jobs/_progress.html", {"snap": progress.snapshot(job)})


@accepts_token
@require_POST
@member_required
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible_job(request, pk)
    request_cancel(job, request=request)
    if request.htmx:
        return render(request, "jobs/_progress.html", {"snap": progress.snapshot(job)})
    return redirect(job)


def _sse(event: str, html: str) -> str:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n"


def _render_snapshot(snap: dict, language: str | None) -> str:
    with translation.override(language):  # the page's language, held by the stream between its events
        return render_to_string("jobs/_progress.html", {"snap": snap})


@accepts_token
async def job_events(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Server-sent events: the progress partial each time the worker publishes."""
    user = await request.auser()
    if not user.is_authenticated or not await sync_to_async(is_member)(user):
        raise Http404()

    def load() -> dict:
        return progress.snapshot(_visible_job(request, pk))

    request.user = user
    first = await sync_to_async(load)()
    response = StreamingHttpResponse(_event_stream(pk, first, load, translation.get_language()),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


async def _event_stream(pk: int, first: dict, load, language: str | None) -> AsyncIterator[str]:
    """The job's snapshots as events until it ends; keepalives while it is quiet."""
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(progress.channel(pk))
        # Read the state again after subscribing, so nothing between is lost.
        snap = await sync_to_async(load)() if first["active"] else first
        yield _sse("job", _render_snapshot(snap, language))
        while snap["active"]:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=SSE_KEEPALIVE_SECONDS)
            if message is None:
                yield ": keepalive\n\n"
                continue
            snap = json.loads(message["data"])
            yield _sse("job", _render_snapshot(snap, language))
        yield _sse("end", "")
    except (aioredis.RedisError, OSError):
        yield _sse("job", _render_snapshot(first, language))
        yield _sse("end", "")
    finally:
        try:
            await pubsub.aclose()
            await client.aclose()
        except Exception:
            pass
