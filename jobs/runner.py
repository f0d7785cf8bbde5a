"""Running jobs: launch from a view, run in a worker, report progress, never hang.

A view calls ``launch(task, ...)``; it creates the Job row and queues the task
when the transaction commits. The worker side is a function decorated with
``@job_task(kind, name=...)`` that receives a ``JobContext`` and returns a result line.
While it runs, a thread heartbeats the row; ``reap_stale_jobs`` fails jobs
whose heartbeat stopped (the worker was killed).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import current_app, shared_task
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import progress
from .audit_records import audit_job
from .models import Job
from .rows import for_update, hold
from .signals import announce_end

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 0.2  # seconds between progress messages: fast streams do not flood Redis
SAVE_INTERVAL = 1.0  # seconds between progress writes to the database


class JobError(Exception):
    """A job could not be started; the message is meant for the user."""


class QueueUnavailable(JobError):
    pass


class JobConflict(JobError):
    pass


class JobCancelled(Exception):
    """Raised inside a job when its owner asked to cancel at a safe point."""


# Kinds that may run side by side on the same volume; everything else excludes the others. They only read
# (info: the Image panel's qemu-img info, which a download must not have to wait for, nor it for a download).
SHARED_KINDS = frozenset({"download", "sync", "info"})
# Kinds that change a VM's disk list, not the volume's bytes: they need no reader to wait, nor do readers
# wait for them (the volume page reads the image while someone attaches it).
VOLUME_KEEPING_KINDS = frozenset({"vm-attach", "vm-detach"})
# Kinds that wait on a client for as long as it sends (a streaming upload): they go to a queue of their
# own, served by workers of their own (Procfile `transfers:`), so they never hold a slot other jobs need.
TRANSFER_KINDS = frozenset({"upload"})
TRANSFER_QUEUE_SUFFIX = "-transfers"


def queue_for(kind: str, host: Any = None) -> str:
    """The Celery queue a job of this kind for this host goes to: the host's own queue when it names one (a
    worker beside that host serves it), else the shared one; uploads to its transfers twin."""
    base = getattr(host, "queue", "") or current_app.conf.task_default_queue
    return base + TRANSFER_QUEUE_SUFFIX if kind in TRANSFER_KINDS else base


def transfer_queue(host: Any = None) -> str:
    """The transfers queue of this host (or the shared one): where work that moves a client's bytes runs."""
    return queue_for("upload", host)


def launch(task: Any, *, kind: str, user, host, pool=None, volume_name: str = "", params: dict | None = None,
           cancellable: bool = False, pool_name: str = "", target_pool=None, target_volume_name: str = "",
           request=None, hold: Callable[[], None] | None = None) -> Job:
    """Create a job and queue it. Raises QueueUnavailable or JobConflict with a clear message.
    target_pool/target_volume_name: a second place the job writes (a clone into another pool).
    request: the one asking, whose address the audit log keeps with the launch (or the refusal). hold: called in
    the transaction before the job row (volumes/quota.py's lock and check); its JobError refuses the launch."""
    job = None
    try:
        if not progress.broker_available():
            raise QueueUnavailable(
                _("The job queue (Redis) is not reachable, so nothing was started. "
                  "Ask an admin to start Redis and the Celery worker, then try again.")
            )
        with transaction.atomic():
            if hold is not None:
                hold()
            job = _create_job(kind=kind, user=user, host=host, pool=pool, volume_name=volume_name, params=params,
                              cancellable=cancellable, pool_name=pool_name, target_pool=target_pool,
                              target_volume_name=target_volume_name)
            audit_job(job, "started", request=request)
            transaction.on_commit(functools.partial(_enqueue, task, job.pk, queue_for(kind, host)), robust=False)
    except JobError as exc:
        if job is not None:  # created, then the queue refused it: _enqueue recorded its failure
            raise
        refused = Job(kind=kind, host=host, pool=pool, pool_name=pool_name or (pool.name if pool else ""),
                      volume_name=volume_name, params=params or {}, created_by=_person(user))
        audit_job(refused, "refused", request=request, error=str(exc))
        raise
    return job


def _person(user):
    return user if user and user.is_authenticated else None


def _create_job(*, kind: str, user, host, pool, volume_name: str, params: dict | None, cancellable: bool,
                pool_name: str = "", target_pool=None, target_volume_name: str = "", **fields) -> Job:
    """The Job row, after the conflict check; call inside a transaction."""
    if host is not None and not hold(host):  # see rows.py: the job row must not outlive its host's removal
        raise JobConflict(_("%(host)s was removed from the app meanwhile.") % {"host": host})
    places = [(pool, volume_name)] + ([(target_pool, target_volume_name)] if target_pool is not None else [])
    _refuse_if_busy(kind, places)
    return Job.objects.create(
        kind=kind, host=host, pool=pool, pool_name=pool_name or (pool.name if pool else ""),
        volume_name=volume_name, created_by=_person(user),
        params=params or {}, cancellable=cancellable, target_pool=target_pool,
        target_volume_name=target_volume_name, language=translation.get_language() or "", **fields,
    )


def _touching(pool, volume_name: str) -> Q:
    """Active jobs that touch the volume (or, with no name, anything) of the pool, where they read or write."""
    if not volume_name:
        return Q(pool=pool) | Q(target_pool=pool)
    return (Q(pool=pool) & Q(volume_name__in=[volume_name, ""])) | Q(target_pool=pool,
                                                                      target_volume_name=volume_name)


def _refuse_if_busy(kind: str, places: list[tuple[object, str]]) -> None:
    """Raise JobConflict if the job would collide with an active one; call inside the creating transaction.

    A volume job needs its volume free (shared kinds such as downloads may run side by side);
    a pool job (volume_name empty: start, stop, delete...) needs the whole pool free, and a
    volume job waits for a running pool job. A job that also writes elsewhere (a clone's new
    volume in another pool) needs that place free too, and keeps it busy while it runs.
    Locking the pool rows (in one order) serializes launches on a pool (SQLite's immediate
    transactions already do).
    """
    places = [(pool, name) for pool, name in places if pool is not None]
    if not places:
        return
    pools = sorted({pool.pk: pool for pool, _ in places}.values(), key=lambda pool: pool.pk)
    for pool in pools:
        if for_update(type(pool).objects.filter(pk=pool.pk)).first() is None:
            raise JobConflict(str(pool.removed()))  # the pool's own words (pools/models.py)
    touching = Q()
    for pool, volume_name in places:
        touching |= _touching(pool, volume_name)
    active = Job.objects.active().filter(touching)
    if kind in SHARED_KINDS:
        active = active.exclude(kind__in=SHARED_KINDS | VOLUME_KEEPING_KINDS)
    elif kind in VOLUME_KEEPING_KINDS:
        active = active.exclude(kind__in=SHARED_KINDS)
    other = active.first()
    if other is None:
        return
    words = {"volume": other.volume_name, "pool": other.pool_name, "job": other.pk,
             "kind": other.get_kind_display().lower(), "state": other.get_state_display().lower()}
    if other.target_pool_id and any(pool.pk == other.target_pool_id for pool, _name in places):
        words.update(target=other.target_volume_name, target_pool=other.target_pool.name)
        if other.volume_name:
            message = _("“%(volume)s” is busy with job #%(job)s, which writes “%(target)s” in pool %(target_pool)s "
                        "(%(kind)s, %(state)s); wait for it to finish.")
        else:
            message = _("Pool %(pool)s is busy with job #%(job)s, which writes “%(target)s” in pool %(target_pool)s "
                        "(%(kind)s, %(state)s); wait for it to finish.")
    elif other.volume_name:
        message = _("“%(volume)s” is busy with job #%(job)s (%(kind)s, %(state)s); wait for it to finish.")
    else:
        message = _("Pool %(pool)s is busy with job #%(job)s (%(kind)s, %(state)s); wait for it to finish.")
    raise JobConflict(message % words)


def start_inline(*, kind: str, user, host, pool=None, volume_name: str = "", params: dict | None = None,
                 cancellable: bool = False, request=None) -> JobContext:
    """A job the calling process runs itself (a download streamed by the web server), already running.

    The caller reports through the context, calls ``touch`` at least every JOB_HEARTBEAT_SECONDS
    (else the reaper fails the job) and ends it with ``finish_inline``.
    """
    with transaction.atomic():
        now = timezone.now()
        job = _create_job(kind=kind, user=user, host=host, pool=pool, volume_name=volume_name, params=params,
                          cancellable=cancellable, state=Job.State.RUNNING, started_at=now, heartbeat_at=now,
                          worker=f"{socket.gethostname()}:{os.getpid()} (web)")
        audit_job(job, "started", request=request)
    ctx = JobContext(job)
    progress.publish(job)
    return ctx


def touch(job: Job) -> None:
    """Heartbeat of an inline job."""
    Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(heartbeat_at=timezone.now())


def finish_inline(ctx: JobContext, state: str, *, error: str = "", result: str = "") -> None:
    """End an inline job: saves its last progress, logs the outcome and tells the watchers."""
    ctx.job.save(update_fields=["progress_done", "progress_total"])
    ctx.log_line(error or result or _("Done"))
    _finish(ctx.job, state, error=error, result=result)


def _enqueue(task, job_id: int, queue: str) -> None:
    """Queue the job's task: a task object, or a task's name (an app below the one that defines it)."""
    try:
        if isinstance(task, str):
            current_app.send_task(task, args=[job_id], retry=False, queue=queue)
        else:
            task.apply_async(args=[job_id], retry=False, queue=queue)
    except Exception as exc:  # kombu raises several types for a dead broker
        error = _("Could not queue the job: %(error)s") % {"error": exc}
        with transaction.atomic():
            Job.objects.filter(pk=job_id).update(state=Job.State.FAILED, error=error, finished_at=timezone.now())
            audit_job(Job.objects.select_related("host").get(pk=job_id), "failed", error=error)
        announce_end(Job.objects.get(pk=job_id))
        raise QueueUnavailable(_("The job queue (Redis) refused the job: %(error)s") % {"error": exc}) from exc


class JobContext:
    """What a running job uses to talk to its record and its watchers."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._last_publish = 0.0
        self._last_save = 0.0

    # Convenience accessors so job functions read naturally.
    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def leads_to(self, url: str, *, what: str = "it") -> None:
        """Where what the job made is (a path of this site): its page links it once the job succeeded, as "Open
        it", or as "Open the pool" with what="pool" (where a deleted volume was). Saved with the job's end, not in
        a write of its own."""
        self.job.params = {**self.job.params, "result_url": url, "result_link": what}

    def keep(self, **params: Any) -> None:
        """Add these to the job's params and save them: what a page, the API or a later job reads of this one
        (a report, the path copied, the link to what it made)."""
        self.job.params = {**self.job.params, **params}
        self.job.save(update_fields=["params"])

    @property
    def host(self):
        return self.job.host

    @property
    def pool(self):
        return self.job.pool

    def step(self, message: str, *, done: int | None = None, total: int | None = None) -> None:
        """A new phase: logged, saved and published at once; with done (of total), its progress in the same write
        (a phase that reports bytes starts at 0 of its total)."""
        self.log_line(message)
        fields = ["message", "log"]
        if done is not None:
            self._set_progress(done, total)
            fields += ["progress_done", "progress_total"]
            self._last_save = time.monotonic()
        self.job.save(update_fields=fields)
        self._publish(force=True)

    def log_line(self, message: str) -> None:
        """A line of the log, not saved yet: the last one goes out with the end (_finish), one write, not two."""
        self.job.message = message[:500]
        self.job.log += f"{timezone.localtime():%H:%M:%S} {message}\n"

    def report(self, done: int, total: int | None = None) -> None:
        """Bytes done (of total): published at most every 0.2 s, saved every second."""
        self._set_progress(done, total)
        now = time.monotonic()
        if now - self._last_save >= SAVE_INTERVAL:
            self._last_save = now
            self.job.save(update_fields=["progress_done", "progress_total"])
        self._publish()

    def _set_progress(self, done: int, total: int | None) -> None:
        self.job.progress_done = done
        if total is not None:
            self.job.progress_total = total

    def check_cancel(self) -> None:
        """Raise JobCancelled if the owner asked; call at points where stopping is safe."""
        if _cancel_requested(self.job):
            raise JobCancelled()

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_publish >= PUBLISH_INTERVAL:
            self._last_publish = now
            progress.publish(self.job)


class _Heartbeat(threading.Thread):
    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_HEARTBEAT_SECONDS):
                Job.objects.filter(pk=self.job_id, state=Job.State.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()


def _cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


FINISH_OUTCOMES = {Job.State.SUCCEEDED: "ok", Job.State.FAILED: "failed", Job.State.CANCELLED: "cancelled"}


def _finish(job: Job, state: str, *, error: str = "", result: str = "") -> None:
    job.state = state
    job.error = error
    job.result = result[:500]
    job.finished_at = timezone.now()
    if state == Job.State.SUCCEEDED and job.progress_total:
        job.progress_done = job.progress_total
    with transaction.atomic():  # the end and its audit record together
        job.save(update_fields=["state", "error", "result", "finished_at", "progress_done", "message", "log",
                                "params"])  # params: what the body kept unsaved (leads_to)
        audit_job(job, FINISH_OUTCOMES[state], error=error, result=result)
    announce_end(job)  # before the watchers hear the end: what they reload is up to date
    progress.publish(job)


def run_job(job_id: int, body: Callable[[JobContext], str | None]) -> None:
    """Claim a queued job, run body, and leave the job in a final state whatever happens."""
    close_old_connections()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
        state=Job.State.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    if not claimed:
        log.info("job %s is not queued any more (cancelled, reaped or redelivered); skipping", job_id)
        return
    job = Job.objects.select_related("host", "pool", "created_by").get(pk=job_id)  # created_by: the end's audit
    ctx = JobContext(job)
    progress.publish(job)
    heartbeat = _Heartbeat(job_id)
    heartbeat.start()
    with translation.override(job.language or settings.LANGUAGE_CODE):
        _run_body(job, ctx, body, heartbeat)


def _run_body(job: Job, ctx: JobContext, body: Callable[[JobContext], str | None], heartbeat: _Heartbeat) -> None:
    try:
        ctx.check_cancel()  # asked between the claim and now: the job row loaded at the claim cannot know
        result = body(ctx) or ""
    except JobCancelled:
        ctx.log_line(_("Cancelled at the owner's request"))
        _finish(job, Job.State.CANCELLED, error=_("Cancelled by the user."))
    except Exception as exc:  # every failure must end the job, with its reason
        message = str(exc) or exc.__class__.__name__
        ctx.log_line(_("Failed: %(error)s") % {"error": message})
        if _cancel_requested(job):
            # The owner's cancel (an abandon, say) took away what the body was reading: it ended as asked.
            ctx.log_line(_("Cancelled at the owner's request"))
            _finish(job, Job.State.CANCELLED, error=_("Cancelled by the user."))
        else:
            log.exception("job %s failed", job.pk)
            _finish(job, Job.State.FAILED, error=message)
    else:
        ctx.log_line(result or _("Done"))
        _finish(job, Job.State.SUCCEEDED, result=result)
    finally:
        heartbeat.stopped.set()


def job_task(kind: str, *, name: str) -> Callable[[Callable[[JobContext], str | None]], Any]:
    """Turn ``body(ctx) -> result line`` into a Celery task that takes a job id.

    ``name`` is the task's name in the queue: spelled out, never derived from the module, so that moving
    the code never strands the messages a queue still holds."""

    def decorate(body: Callable[[JobContext], str | None]):
        @shared_task(name=name, ignore_result=True, acks_late=True)
        @functools.wraps(body)
        def task(job_id: int) -> None:
            run_job(job_id, body)

        task.job_kind = kind
        return task

    return decorate
