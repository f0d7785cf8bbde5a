"""A job's audit records: launched ("started", with the request's address), refused, and ended (ok, failed,
cancelled). The runner writes them as a job starts and ends, the cancel and the reaper when they end one."""

from __future__ import annotations

from audit.log import record as audit_record

from .models import Job

STANDALONE_ACTIONS = frozenset({"download", "upload"})  # the transfers keep their own names in the log


def audit_action(kind: str) -> str:
    """A job kind as an audit action: pool-start -> pool.start, sync -> host.sync, create -> volume.create;
    upload and download stay as they are."""
    if "-" in kind:
        return kind.replace("-", ".", 1)
    if kind == "sync":
        return "host.sync"
    return kind if kind in STANDALONE_ACTIONS else f"volume.{kind}"


def audit_job(job: Job, outcome: str, *, request=None, error: str = "", result: str = "") -> None:
    """The job's audit record: launched ("started", with the request's address), refused, or ended
    (ok, failed, cancelled, with the error). Its target is the volume, else the pool, else the host."""
    host = job.host.name if job.host_id else "a removed host"
    if job.volume_name:
        target = ("volume", f"{job.pool_id}/{job.volume_name}",
                  f"volume {job.volume_name} in pool {job.pool_name} on {host}")
    elif job.pool_name:
        target = ("pool", str(job.pool_id or ""), f"pool {job.pool_name} on {host}")
    else:
        target = ("host", str(job.host_id or ""), f"host {host}")
    detail = {"job": job.pk, "kind": job.kind, "params": job.params}
    if job.target_pool_id:
        detail["writes"] = f"{job.target_pool_id}/{job.target_volume_name}"
    detail.update({key: value for key, value in (("error", error), ("result", result)) if value})
    audit_record(audit_action(job.kind), request=request, user=job.created_by, target_type=target[0],
                 target_id=target[1], target=target[2], outcome=outcome, detail=detail)
