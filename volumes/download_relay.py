"""Downloads from a host with a worker of its own, relayed through Redis: the bytes are read where that worker runs.

A worker beside a remote host reads the volume's file in place (LIBVIRT_HOSTS_HERE, direct file I/O), where a web
server would pull every byte through libvirt's remote protocol. For such a host (settings.DOWNLOAD_RELAY, as
UPLOAD_RELAY: hosts that name a queue) the download view, once it has checked the user and started the download job,
sends ``relay_download`` to the host's transfers queue and reads what the task answers: first a head on a Redis list
(the volume's length and how it is read, or why it cannot be: the image check and the libvirt errors the view would
have met itself), then the volume's records in order on a Redis stream (data, holes, then an end or an error). The
task checks and reads as the view would (download_reader.open_checked, the range asked for included); the view turns
the records into the same response (downloads.FedReader), so plain, sparse and framed downloads all work.

Memory stays bounded: at most DOWNLOAD_RELAY_BUFFER_BYTES of a download wait in Redis, the task waiting for the
web to take some. The task stops when the web says so (a stop key: the client left, the job ended) or when nothing
was taken for twice DOWNLOAD_IDLE_SECONDS (the web process died); the web gives up when no entry came for
DOWNLOAD_IDLE_SECONDS (the worker died), and the download job fails with that reason.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections import deque
from typing import Any

import redis
from celery import shared_task
from django.conf import settings
from django.db import connection as db_connection
from django.utils import translation
from django.utils.translation import gettext as _

from hosts.models import Host
from jobs import progress
from jobs.runner import transfer_queue
from virtstorage.virt import OperationFailed, VirtError, downloads
from virtstorage.virt.imagecheck import UnsafeImage

from . import relay
from .download_reader import Unsatisfiable, open_checked

HOLE_COST = 16  # what a hole record counts against the buffer: its bytes are not sent
TAKE_ENTRIES = 8  # entries the web takes per read of the stream
POLL_MS = 500
TTL_SECONDS = 3600  # keys a crashed party leaves behind go by themselves


def relayed(pool: Any) -> bool:
    """Whether a download from this pool is read by the host's own worker (DOWNLOAD_RELAY)."""
    return relay.relayed(pool, settings.DOWNLOAD_RELAY)


class _Keys:
    def __init__(self, relay_id: str) -> None:
        self.head, self.data, self.buffered, self.stop = (progress.key("download", relay_id, part)
                                                           for part in ("head", "data", "buffered", "stop"))


# -- The web's end ---------------------------------------------------------------------------

def open_reader(volume: Any, *, sparse: bool, framed: bool, language: str, range_header: str | None = None,
                if_range: str | None = None) -> tuple[downloads.FedReader, str]:
    """A reader of the volume's records (of the range asked for, if any) as the host's worker reads and sends
    them, and the ETag (download_reader.open_checked, there). Raises UnsafeImage, VirtError or Unsatisfiable as
    reading here would, or OperationFailed when no worker of the host's queue answers within
    DOWNLOAD_RELAY_WAIT_SECONDS."""
    host, relay_id = volume.pool.host, uuid.uuid4().hex
    keys, client = _Keys(relay_id), progress.client()
    wait = settings.DOWNLOAD_RELAY_WAIT_SECONDS
    how = {"framed": framed, "range_header": range_header, "if_range": if_range}
    try:
        relay_download.apply_async(args=[relay_id, host.pk, volume.pool.name, volume.name, sparse, language],
                                   kwargs=how, queue=transfer_queue(host), expires=wait, retry=False)
        answer = client.blpop([keys.head], timeout=wait)
    except (redis.RedisError, OSError) as exc:
        raise OperationFailed(_("Redis, which carries downloads from the host's worker, is not answering "
                                "(%(error)s).") % {"error": exc}) from exc
    if answer is None:
        client.set(keys.stop, 1, ex=TTL_SECONDS)  # a worker that takes the task late sends nothing
        raise OperationFailed(_("No worker of %(host)s's queue %(queue)s answered within %(seconds)s s: start one "
                                "beside the host (see the README), or empty the host's queue name.")
                              % {"host": host.name, "queue": transfer_queue(host), "seconds": wait})
    head = json.loads(answer[1])
    if "unsatisfiable" in head:
        raise Unsatisfiable(head["unsatisfiable"])
    if "error" in head:
        raise (UnsafeImage if head.get("unsafe") else OperationFailed)(head["error"])
    taker = _Taker(keys, client)
    reader = downloads.FedReader(head["length"], head["how"], taker.next_record, taker.stop, sparse=sparse,
                                 offset=head["offset"], stop=head["stop"])
    return reader, head["etag"]


class _Taker:
    """The web's end of one relayed download: the stream's entries as records, taken off as they are read."""

    def __init__(self, keys: _Keys, redis: Any) -> None:
        self.keys, self.redis = keys, redis
        self.last_id = "0"
        self.pending: deque[downloads.Record | None] = deque()
        self.ended = False

    def next_record(self) -> downloads.Record | None:
        """The next record; None at the end, and after it."""
        if self.ended:
            return None
        quiet_since = time.monotonic()
        while not self.pending:
            if not self._take():
                if time.monotonic() - quiet_since > settings.DOWNLOAD_IDLE_SECONDS:
                    raise OperationFailed(_("The host's worker sent nothing for %(seconds)s s: it stopped or died.")
                                          % {"seconds": settings.DOWNLOAD_IDLE_SECONDS})
        record = self.pending.popleft()
        self.ended = record is None
        return record

    def _take(self) -> bool:
        reply = self.redis.xread({self.keys.data: self.last_id}, count=TAKE_ENTRIES, block=POLL_MS)
        if not reply or not reply[0][1]:
            return False
        ids, cost = [], 0
        for entry_id, fields in reply[0][1]:
            ids.append(entry_id)
            self.last_id = entry_id
            if b"d" in fields:
                self.pending.append(downloads.Data(int(fields[b"o"]), fields[b"d"]))
                cost += len(fields[b"d"])
            elif b"h" in fields:
                self.pending.append(downloads.Hole(int(fields[b"o"]), int(fields[b"h"])))
                cost += HOLE_COST
            elif b"x" in fields:
                raise OperationFailed(fields[b"x"].decode())
            else:
                self.pending.append(None)  # the end
        pipe = self.redis.pipeline()
        pipe.xdel(self.keys.data, *ids)
        pipe.decrby(self.keys.buffered, cost)
        pipe.execute()
        return True

    def stop(self) -> None:
        """The download ended here (whole, cut or cancelled): the worker stops, the keys go."""
        pipe = self.redis.pipeline()
        pipe.set(self.keys.stop, 1, ex=TTL_SECONDS)
        pipe.delete(self.keys.data, self.keys.buffered, self.keys.head)
        pipe.execute()


# -- The worker's end --------------------------------------------------------------------------

class _Stopped(Exception):
    """The web ended the download, or took nothing for too long."""


class _Sender:
    def __init__(self, relay_id: str) -> None:
        self.keys, self.redis = _Keys(relay_id), progress.client()
        self.buffered = 0
        self.taken_at = time.monotonic()

    def head(self, fields: dict) -> None:
        pipe = self.redis.pipeline()
        pipe.rpush(self.keys.head, json.dumps(fields))
        pipe.expire(self.keys.head, TTL_SECONDS)
        pipe.execute()

    def push(self, fields: dict, cost: int) -> None:
        pause = 0.002
        while self.buffered > 0 and self.buffered + cost > settings.DOWNLOAD_RELAY_BUFFER_BYTES:
            if time.monotonic() - self.taken_at > 2 * settings.DOWNLOAD_IDLE_SECONDS:
                raise _Stopped()
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            stopped, buffered = self.redis.mget(self.keys.stop, self.keys.buffered)
            if stopped:
                raise _Stopped()
            if int(buffered or 0) < self.buffered:
                self.taken_at = time.monotonic()
            self.buffered = int(buffered or 0)
        pipe = self.redis.pipeline()
        pipe.xadd(self.keys.data, fields)
        pipe.incrby(self.keys.buffered, cost)
        pipe.expire(self.keys.data, TTL_SECONDS)
        pipe.expire(self.keys.buffered, TTL_SECONDS)
        pipe.exists(self.keys.stop)
        _id, self.buffered, _ttl, _ttl2, stopped = pipe.execute()
        if stopped:
            raise _Stopped()

    def discard(self) -> None:
        self.redis.delete(self.keys.data, self.keys.buffered)

    def send(self, reader: downloads.Reader) -> None:
        while (record := reader.next_record()) is not None:
            if isinstance(record, downloads.Data):
                self.push({"o": record.offset, "d": record.data}, len(record.data))
            else:
                self.push({"o": record.offset, "h": record.length}, HOLE_COST)
        self.push({"e": 1}, 0)


@shared_task(name="volumes.download_relay.relay_download", ignore_result=True, acks_late=False)
def relay_download(relay_id: str, host_id: int, pool_name: str, name: str, sparse: bool, language: str,
                   **how: Any) -> None:
    """Read the volume here (checked first, as every operation is) and send its records to the web's download;
    how: download_reader.open_checked's framed, range_header and if_range (a web from before ranges sends none:
    the whole volume)."""
    sender = _Sender(relay_id)
    try:
        with translation.override(language):
            _relay(sender, host_id, pool_name, name, {"sparse": sparse, **how})
    finally:
        db_connection.close()


def _relay(sender: _Sender, host_id: int, pool_name: str, name: str, how: dict[str, Any]) -> None:
    host = Host.objects.get(pk=host_id)
    try:
        reader, etag = open_checked(host, pool_name, name, **how)
    except Unsatisfiable as exc:
        sender.head({"unsatisfiable": exc.length})
        return
    except (UnsafeImage, VirtError) as exc:
        sender.head({"error": str(exc), "unsafe": isinstance(exc, UnsafeImage)})
        return
    try:
        sender.head({"length": reader.length, "offset": reader.offset, "stop": reader.stop, "etag": etag,
                     "how": _("%(how)s, by the host's worker on %(machine)s through the relay")
                     % {"how": reader.how, "machine": socket.gethostname()}})
        sender.send(reader)
    except _Stopped:
        sender.discard()  # what it pushed while the web was ending the download would otherwise stay an hour
    except Exception as exc:  # noqa: BLE001 - the web's download fails with it instead of waiting it out
        with contextlib.suppress(_Stopped, redis.RedisError):
            sender.push({"x": str(exc) or type(exc).__name__}, 0)
    finally:
        reader.close()
