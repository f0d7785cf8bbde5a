#!/usr/bin/env python3
"""virtstorage's command-line transfer client: upload a disk image into a volume, download a volume.

Python 3.9+ standard library only: copy this one file to any machine that reaches the app.

  vstransfer.py --url URL --user NAME upload FILE --pool ID --volume NAME [--capacity 20G] [--replace]
  vstransfer.py --url URL --user NAME download VOLUME_ID OUT [--sparse]

It authenticates with a personal API token when there is one (--token, or $VIRTSTORAGE_TOKEN; make one on
the app's "API tokens" page): no login, no session, no CSRF token. Otherwise it logs in as --user with the
password from $VIRTSTORAGE_PASSWORD, else asked for. What it does is what the
README's curl examples do, done well:
- upload: only the file's data is sent (holes found with SEEK_DATA/SEEK_HOLE are declared, never
  sent), straight from the page cache to the socket (sendfile): long runs of data a chunk each, a file of
  many short runs framed, its runs and holes in one request (the sparse format); after a dropped connection
  it asks the server what is missing and sends only that (--resume ID picks up an upload of an
  earlier run); then it follows the job that writes the volume until it ends.
- download: see ``download`` below.
Exit status: 0 done, 1 the server or the job said no (the reason is printed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import http.client
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator

# Each request costs the server a few ms whatever its size (Django's middleware, the session, a
# database write), so the client sends few and large ones: one per run of data up to CHUNK_BYTES
# (the server records a chunk's bytes while it arrives, every 16 MiB and at most four times a second,
# so the job writing the volume follows it and a dropped connection keeps what arrived), and all the
# holes in one request.
CHUNK_BYTES = 256 * 1024 * 1024
# A hole shorter than this between data is sent as zeros: cheaper than a request of its own.
MIN_HOLE_BYTES = 1024 * 1024
HOLES_PER_REQUEST = 50_000
# A file whose data runs are short (on average under FRAMED_BELOW_BYTES) is sent framed: its runs and holes in
# one request of the sparse format, up to CHUNK_BYTES of data each, instead of a request per run (8 GiB holding
# 256 MiB in 32 runs: 33 requests, each 10-20 ms of the server's Django, session and upload-row work, sent in
# 0.55-0.83 s here). Long runs go a chunk each, in file order, so the job writes the volume while the next
# chunk arrives.
FRAMED_BELOW_BYTES = 32 * 1024 * 1024
# The sparse format (downloads' ``?format=sparse``, uploads' framed chunks), as virtstorage/virt/sparse_format.py
# defines it: this script is standalone, so it carries its own copy of these constants; change both together.
SPARSE_MIME_TYPE = "application/vnd.virtstorage.sparse"
SPARSE_MAGIC = b"VSSPARS1"
SPARSE_HEADER_BYTES = 17  # kind (1 byte), offset (u64), length (u64), big-endian
SPARSE_DATA, SPARSE_HOLE, SPARSE_END = b"D", b"H", b"E"
RETRIES = 5  # reconnections in a row before giving up
JOB_POLL_SECONDS = 0.05  # only where the job's server-sent events do not get through (follow_job)
EVENTS_RETRY_SECONDS = 0.5  # the events ended but the job did not (Redis away): look again after this


class ServerBusy(Exception):
    """503 with Retry-After: the server has no room for the chunk now (a relayed upload's buffer is full)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the server is busy; retrying in {seconds:g} s")
        self.seconds = seconds


class TransferError(Exception):
    """The server refused something; the message says what."""


class Session:
    """One keep-alive HTTP connection, logged in with a Django session and a CSRF token."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransferError(f"--url must look like http://host:port, not {url!r}")
        self.url = url
        self.scheme, self.netloc, self.base = parts.scheme, parts.netloc, parts.path.rstrip("/")
        self.cookies: dict[str, str] = {}
        self.token: str | None = None
        self.conn: http.client.HTTPConnection | None = None

    def twin(self) -> Session:
        """The same login on a connection of its own (for a stream that holds its connection)."""
        twin = Session(self.url)
        twin.cookies, twin.token = dict(self.cookies), self.token
        return twin

    def connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self.conn = cls(self.netloc, timeout=600)
        return self.conn

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        if self.token is not None:  # a token request: no cookies, no CSRF token
            return {"Authorization": f"Bearer {self.token}", **(extra or {})}
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Referer": f"{self.scheme}://{self.netloc}/"}  # Django's CSRF check wants it on https
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        return {**headers, **(extra or {})}

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """Send a request with a body in memory; the response is read by the caller."""
        conn = self.connect()
        conn.request(method, self.base + path, body=body, headers=self.headers(headers))
        response = conn.getresponse()
        self._keep_cookies(response)
        return response

    def json(self, method: str, path: str, payload: dict | None = None, ok: tuple[int, ...] = (200, 201, 202)) -> dict:
        body = json.dumps(payload).encode() if payload is not None else None
        response = self.request(method, path, body, {"Content-Type": "application/json", "Accept": "application/json"})
        data = response.read()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"error": data.decode(errors="replace")[:300]}
        if response.status not in ok:
            raise TransferError(_explain(response.status, parsed))
        return parsed

    def login(self, user: str, password: str) -> None:
        self.request("GET", "/accounts/login/").read()
        form = urllib.parse.urlencode({"username": user, "password": password,
                                       "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}).encode()
        response = self.request("POST", "/accounts/login/", form,
                                {"Content-Type": "application/x-www-form-urlencoded"})
        response.read()
        if response.status == 429:  # django-axes: too many failed logins for this name or this address
            raise TransferError(f"login as {user} refused: too many failed logins; wait for the cool-off "
                                f"(LOGIN_COOLOFF_MINUTES) or ask an admin to unlock it (manage.py axes_reset_username)")
        if response.status != 302 or "sessionid" not in self.cookies:
            raise TransferError(f"login as {user} failed: wrong user name or password?")


    def use_token(self, token: str) -> None:
        """Authenticate every request with the API token (checked at once: a refused token says why)."""
        self.token = token
        self.json("GET", "/api/hosts/?page_size=1")


def _explain(status: int, parsed: dict) -> str:
    message = parsed.get("error") or parsed.get("message") or f"HTTP {status}"
    errors = parsed.get("errors") or {}
    details = "; ".join(f"{field}: {' '.join(t if isinstance(t, str) else t.get('message', '') for t in texts)}"
                        for field, texts in errors.items())
    return f"{message} {details}".strip()


# -- upload -----------------------------------------------------------------------


def _runs(fd: int, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """(offset, length, is_data) runs of the file between start and end, by SEEK_DATA/SEEK_HOLE.

    The app's own libvirt layer has the same walk (virtstorage/virt/streams.py segments); this
    file carries its own so that it runs alone on any machine.
    """
    pos = start
    while pos < end:
        try:
            data_at = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here on
                data_at = end
            elif exc.errno == errno.EINVAL:  # no SEEK_DATA on this file system: all data
                yield pos, end - pos, True
                return
            else:
                raise
        if data_at > pos:
            hole_end = min(data_at, end)
            yield pos, hole_end - pos, False
            pos = hole_end
            continue
        data_end = min(os.lseek(fd, pos, os.SEEK_HOLE), end)
        yield pos, data_end - pos, True
        pos = data_end


class _Progress:
    """Progress lines on stderr, about once a second."""

    def __init__(self, quiet: bool, total: int = 0) -> None:
        self.quiet, self.total, self.started, self.last = quiet, total, time.monotonic(), 0.0

    def due(self, force: bool = False) -> bool:
        """Whether a line said now would be printed: not quiet, and forced or a second after the last."""
        return not self.quiet and (force or time.monotonic() - self.last >= 1)

    def say(self, text: str, force: bool = False) -> None:
        if self.due(force):
            now = self.last = time.monotonic()
            print(f"  {now - self.started:6.1f}s  {text}", file=sys.stderr)

    def show(self, done: int) -> None:
        self.say(f"{_size_text(done)} of {_size_text(self.total)}")

    def seconds(self) -> float:
        return time.monotonic() - self.started


def _size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _put_range(session: Session, chunks_url: str, source, offset: int, length: int, total: int) -> dict:
    """One chunk, from the page cache straight to the socket (sendfile); the upload's state back."""
    return _put_body(session, chunks_url, {"Content-Range": f"bytes {offset}-{offset + length - 1}/{total}",
                                           "Content-Length": str(length), "Content-Type": "application/octet-stream"},
                     lambda sock: sock.sendfile(source, offset, length))


def _put_body(session: Session, chunks_url: str, headers: dict[str, str], send) -> dict:
    """A chunk PUT whose body send(socket) writes; the upload's state back."""
    conn = session.connect()
    conn.putrequest("PUT", session.base + chunks_url, skip_accept_encoding=True)
    for name, value in session.headers({**headers, "Accept": "application/json"}).items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        send(conn.sock)
    except (BrokenPipeError, ConnectionResetError) as cut:
        # The server may have answered before taking the body (a refusal, or 503 with Retry-After: no room yet).
        try:
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            raise cut from None
        return _state_of(session, response)
    return _state_of(session, conn.getresponse())


def _put_holes(session: Session, holes_url: str, holes: list[list[int]]) -> dict:
    body = json.dumps({"holes": holes}).encode()
    return _state_of(session, session.request("POST", holes_url, body,
                                              {"Content-Type": "application/json", "Accept": "application/json"}))


def _plan(fd: int, missing: list[list[int]]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The holes ([offset, length]) and data runs ((offset, length)) of the missing ranges; holes
    shorter than MIN_HOLE_BYTES between data go with the data."""
    holes: list[list[int]] = []
    data: list[tuple[int, int]] = []
    for start, end in missing:
        runs = list(_runs(fd, start, end))
        for i, (offset, length, is_data) in enumerate(runs):
            inner = 0 < i < len(runs) - 1
            if not is_data and not (inner and length < MIN_HOLE_BYTES):
                holes.append([offset, length])
            elif data and data[-1][0] + data[-1][1] == offset:
                data[-1] = (data[-1][0], data[-1][1] + length)
            else:
                data.append((offset, length))
    return holes, data


def _state_of(session: Session, response: http.client.HTTPResponse) -> dict:
    session._keep_cookies(response)
    data = response.read()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"error": data.decode(errors="replace")[:300]}
    if response.status == 503 and response.headers.get("Retry-After", "").isdigit():
        raise ServerBusy(min(float(response.headers["Retry-After"]), 60.0))
    if response.status != 200:
        raise TransferError(_explain(response.status, parsed))
    return parsed


def _send_missing(session: Session, state: dict, source, fd: int, progress: _Progress) -> dict:
    """Send every range the server lacks (holes declared, data sent) until it lacks none."""
    while state["missing"]:
        holes, data = _plan(fd, state["missing"])
        pieces = [(chunk, min(CHUNK_BYTES, offset + length - chunk))
                  for offset, length in data for chunk in range(offset, offset + length, CHUNK_BYTES)]
        if len(holes) + len(pieces) > 1 and sum(n for _, n in pieces) < FRAMED_BELOW_BYTES * len(pieces):
            for frames in _framed_requests(holes, pieces):
                _said(progress, state["size"], _put_frames(session, state["chunks_url"], source, frames, state["size"]))
        else:
            for i in range(0, len(holes), HOLES_PER_REQUEST):
                state = _put_holes(session, state["holes_url"], holes[i:i + HOLES_PER_REQUEST])
            for offset, length in pieces:
                _said(progress, state["size"], _put_range(session, state["chunks_url"], source, offset, length,
                                                          state["size"]))
        state = session.json("GET", state["url"])  # the server's word on what is still missing
    return state


def _framed_requests(holes: list[list[int]], pieces: list[tuple[int, int]]) -> Iterator[list[tuple[bytes, int, int]]]:
    """The holes and data pieces as frames (kind, offset, length) in file order, cut into requests of at most
    CHUNK_BYTES of data and HOLES_PER_REQUEST frames."""
    frames = sorted([(SPARSE_HOLE, offset, length) for offset, length in holes]
                    + [(SPARSE_DATA, offset, length) for offset, length in pieces], key=lambda frame: frame[1])
    request: list[tuple[bytes, int, int]] = []
    data = 0
    for frame in frames:
        if request and (len(request) >= HOLES_PER_REQUEST
                        or (frame[0] == SPARSE_DATA and data + frame[2] > CHUNK_BYTES)):
            yield request
            request, data = [], 0
        request.append(frame)
        data += frame[2] if frame[0] == SPARSE_DATA else 0
    if request:
        yield request


def _frame_header(kind: bytes, offset: int, length: int) -> bytes:
    return kind + offset.to_bytes(8, "big") + length.to_bytes(8, "big")


def _put_frames(session: Session, chunks_url: str, source, frames: list[tuple[bytes, int, int]], total: int) -> dict:
    """One framed chunk request: the frames' headers, each data frame's bytes from the page cache straight to the
    socket (sendfile), the end frame; the upload's state back."""
    data = sum(length for kind, _, length in frames if kind == SPARSE_DATA)

    def send(sock) -> None:
        head = SPARSE_MAGIC
        for kind, offset, length in frames:
            head += _frame_header(kind, offset, length)
            if kind == SPARSE_DATA:
                sock.sendall(head)
                sock.sendfile(source, offset, length)
                head = b""
        sock.sendall(head + _frame_header(SPARSE_END, total, data))

    size = len(SPARSE_MAGIC) + SPARSE_HEADER_BYTES * (len(frames) + 1) + data
    return _put_body(session, chunks_url, {"Content-Type": SPARSE_MIME_TYPE, "Content-Length": str(size)}, send)


def _said(progress: _Progress, size: int, state: dict) -> None:
    progress.say(f"sent {_size_text(state['received_bytes'] - state['hole_bytes'])}, "
                 f"{_size_text(state['received_bytes'])} of {_size_text(size)} accounted for")


def upload(session: Session, path: str, pool: int, volume: str, *, capacity: str | None = None,
           replace: bool = False, resume: str | None = None, quiet: bool = False) -> dict:
    """Upload the file into pool/volume and wait for the job; returns the job's final snapshot."""
    size = os.path.getsize(path)
    if resume:
        state = session.json("GET", f"/volumes/uploads/{resume}/")
        if state["size"] != size:
            raise TransferError(f"upload {resume} is of a {state['size']}-byte file; {path} has {size} bytes")
    else:
        fields = {"pool": pool, "volume": volume, "mode": "existing" if replace else "new", "size": size,
                  "filename": os.path.basename(path), "capacity": capacity, "confirm": volume if replace else None}
        state = session.json("POST", "/volumes/uploads/", {k: v for k, v in fields.items() if v is not None})
    progress = _Progress(quiet, size)
    progress.say(f"upload {state['id']} (resume with --resume {state['id']})", force=True)
    with open(path, "rb") as source:
        fd = source.fileno()
        failures = 0
        while True:
            try:
                state = _send_missing(session, state, source, fd, progress)
                break
            except ServerBusy as busy:  # no room for the chunk yet: wait as told, then go on (not a failure)
                progress.say(str(busy), force=True)
                session.reset()
                time.sleep(busy.seconds)
                state = session.json("GET", state["url"])
            except (OSError, http.client.HTTPException) as exc:  # a dropped connection: resume
                failures += 1
                if failures > RETRIES:
                    raise TransferError(f"gave up after {RETRIES} reconnections ({exc}); "
                                        f"resume with --resume {state['id']}") from exc
                progress.say(f"connection lost ({exc}); resuming", force=True)
                session.reset()
                time.sleep(min(2 ** failures, 30))
                state = session.json("GET", state["url"])
    sent = time.monotonic()
    state = session.json("POST", state["complete_url"])
    job = follow_job(session, state["job"], progress)
    # The job of an upload into a new volume wrote it while the chunks arrived: little is left after.
    return {**job, "sent_seconds": sent - progress.started, "seconds": time.monotonic() - progress.started}


def follow_job(session: Session, job_id: int, progress: _Progress) -> dict:
    """Wait for the job's end on its server-sent events, as the pages do (no request while it works); its
    snapshot, or TransferError with its error. Polls only where the events do not get through."""
    events = True
    while True:
        if events:
            events = _until_end_event(session, job_id, progress)
        job = session.json("GET", f"/jobs/{job_id}/")
        if not job["active"]:
            break
        progress.say(_job_line(job_id, job))
        time.sleep(EVENTS_RETRY_SECONDS if events else JOB_POLL_SECONDS)
    if job["state"] != "succeeded":
        raise TransferError(f"job {job_id} {job['state']}: {job['error']}")
    return job


def _job_line(job_id: int, job: dict) -> str:
    done, total = job.get("done") or 0, job.get("total") or 0
    return f"job {job_id}: {job['message']} ({_size_text(done)} of {_size_text(total)})"


def _until_end_event(session: Session, job_id: int, progress: _Progress) -> bool:
    """Read the job's events on a connection of their own until its end event (or the stream's end); False when
    the stream could not be had. An event says the job changed: the progress line is read again then, at most
    as often as it is printed."""
    watcher = session.twin()
    try:
        response = watcher.request("GET", f"/jobs/{job_id}/events/", headers={"Accept": "text/event-stream"})
        if response.status != 200 or not (response.getheader("Content-Type") or "").startswith("text/event-stream"):
            return False
        for line in iter(response.readline, b""):
            if line.startswith(b"event: end"):
                break
            if line.startswith(b"event: job") and progress.due():
                progress.say(_job_line(job_id, session.json("GET", f"/jobs/{job_id}/")))
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        watcher.reset()


# -- download ---------------------------------------------------------------------

DOWNLOAD_BLOCK_BYTES = 8 * 1024 * 1024  # read and written per call; one buffer per download


def _read_fully(response: http.client.HTTPResponse, view: memoryview) -> None:
    """Fill view from the body, or say the download was cut off."""
    got = 0
    while got < len(view):
        n = response.readinto(view[got:])
        if not n:
            raise TransferError("the download was cut off before its end (the file is incomplete)")
        got += n


def _write_fully(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _download_plain(response: http.client.HTTPResponse, fd: int, total: int, progress: _Progress) -> int:
    buffer = memoryview(bytearray(DOWNLOAD_BLOCK_BYTES))
    done = 0
    while n := response.readinto(buffer):
        _write_fully(fd, buffer[:n], done)
        done += n
        progress.show(done)
    if done != total:
        raise TransferError(f"the download was cut off after {done} of {total} bytes (the file is incomplete)")
    return done


def _download_sparse(response: http.client.HTTPResponse, fd: int, progress: _Progress) -> tuple[int, int]:
    """Write the data frames at their offsets (holes are never written); (size, data bytes)."""
    if response.headers.get_content_type() != SPARSE_MIME_TYPE:
        raise TransferError(f"the server sent {response.headers.get_content_type()}, not the sparse format")
    header = memoryview(bytearray(max(SPARSE_HEADER_BYTES, len(SPARSE_MAGIC))))
    _read_fully(response, header[:len(SPARSE_MAGIC)])
    if header[:len(SPARSE_MAGIC)] != SPARSE_MAGIC:
        raise TransferError("the server's answer is not a sparse stream this client knows")
    # Contiguous data frames are gathered in one buffer and written together, in big blocks.
    buffer = memoryview(bytearray(DOWNLOAD_BLOCK_BYTES))
    filled = 0
    buffer_offset = position = data_bytes = 0
    while True:
        _read_fully(response, header[:SPARSE_HEADER_BYTES])
        kind = bytes(header[:1])
        offset = int.from_bytes(header[1:9], "big")
        length = int.from_bytes(header[9:17], "big")
        if kind == SPARSE_END:
            _write_fully(fd, buffer[:filled], buffer_offset)
            if offset < position or length != data_bytes:
                raise TransferError(f"the download's end record says {offset} bytes with {length} of data, "
                                    f"but it held {position} with {data_bytes}")
            if response.read(1):
                raise TransferError("the server sent bytes after the end of the download")
            os.ftruncate(fd, offset)  # the size, holes at the end included
            return offset, data_bytes
        if kind not in (SPARSE_DATA, SPARSE_HOLE) or offset < position:
            raise TransferError(f"bad record in the download ({kind!r} at {offset}, after {position})")
        position = offset + length
        progress.show(position)
        if kind == SPARSE_HOLE:
            continue
        data_bytes += length
        if filled and buffer_offset + filled != offset:
            _write_fully(fd, buffer[:filled], buffer_offset)
            filled = 0
        while length:
            if not filled:
                buffer_offset = offset
            n = min(length, len(buffer) - filled)
            _read_fully(response, buffer[filled:filled + n])
            filled, offset, length = filled + n, offset + n, length - n
            if filled == len(buffer):
                _write_fully(fd, buffer, buffer_offset)
                filled = 0


def download(session: Session, volume_id: int, out_path: str, *, sparse: bool = False, quiet: bool = False) -> dict:
    """Download volume volume_id into out_path (replaced); sparse keeps the volume's holes as holes.

    sparse asks for the framed format: only data crosses the network, written at its offsets, and
    the file is then sized to the volume, so the holes are holes of out_path too. A download whose
    end did not arrive raises TransferError (out_path is then incomplete).
    """
    path = f"/volumes/{int(volume_id)}/download" + ("?format=sparse" if sparse else "")
    try:
        response = session.request("GET", path, headers={"Accept": SPARSE_MIME_TYPE if sparse else "*/*"})
        if response.status != 200:
            text = response.read(300).decode(errors="replace").strip()
            if response.status == 404:
                text = f"no volume {volume_id} (or you may not read it)"
            elif response.status in (301, 302):
                text = "the session ended: log in again"
            raise TransferError(f"download refused (HTTP {response.status}): {text}")
        total = int(response.headers.get("X-Volume-Size") or response.headers.get("Content-Length") or 0)
        progress = _Progress(quiet, total)
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if sparse:
                total, data_bytes = _download_sparse(response, fd, progress)
            else:
                total = data_bytes = _download_plain(response, fd, total, progress)
        finally:
            os.close(fd)
    except http.client.HTTPException as exc:
        session.reset()
        raise TransferError(f"the download was cut off before its end: {exc!r}") from exc
    except BaseException:
        session.reset()  # the connection is in the middle of a body: never reuse it
        raise
    seconds = progress.seconds()
    detail = f" ({_size_text(data_bytes)} of data)" if sparse else ""
    return {"message": f"Downloaded {_size_text(total)}{detail} into {out_path} in {seconds:.1f} s",
            "bytes": total, "data_bytes": data_bytes, "seconds": seconds, "job": response.headers.get("X-Job-Id")}


# -- command line -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("VIRTSTORAGE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--user", default=os.environ.get("VIRTSTORAGE_USER") or getpass.getuser())
    parser.add_argument("--token", default=os.environ.get("VIRTSTORAGE_TOKEN"),
                        help="a personal API token (default: $VIRTSTORAGE_TOKEN); without one, a password login")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upload", help="upload FILE into a new volume (or replace one)")
    up.add_argument("file")
    up.add_argument("--pool", type=int, required=True, help="the pool's id (in its page's address)")
    up.add_argument("--volume", required=True, help="the volume's name")
    up.add_argument("--capacity", help="virtual size of a new raw volume, e.g. 20G (default: the file's size)")
    up.add_argument("--replace", action="store_true", help="replace the volume's contents (they are lost)")
    up.add_argument("--resume", metavar="ID", help="continue the upload ID of an earlier run")
    down = commands.add_parser("download", help="download a volume into OUT")
    down.add_argument("volume_id", type=int, help="the volume's id (in its page's address)")
    down.add_argument("out")
    down.add_argument("--sparse", action="store_true", help="keep the volume's holes as holes in OUT")
    args = parser.parse_args(argv)
    session = Session(args.url)
    try:
        if args.token:
            session.use_token(args.token)
        else:
            session.login(args.user, os.environ.get("VIRTSTORAGE_PASSWORD")
                          or getpass.getpass(f"password for {args.user}: "))
        if args.command == "upload":
            result = upload(session, args.file, args.pool, args.volume, capacity=args.capacity,
                            replace=args.replace, resume=args.resume, quiet=args.quiet)
        else:
            result = download(session, args.volume_id, args.out, sparse=args.sparse, quiet=args.quiet)
    except (TransferError, OSError) as exc:
        print(f"vstransfer: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(result.get("result") or result.get("message") or "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
