#!/usr/bin/env python3
"""virtstorage's command-line transfer client: upload a disk image into a volume, download a volume.

Python 3.9+ standard library only: copy this one file to any machine that reaches the app.

  vstransfer.py --url URL --user NAME upload FILE --pool ID --volume NAME [--capacity 20G] [--replace]
  vstransfer.py --url URL --user NAME download VOLUME_ID OUT [--sparse]

The password comes from $VIRTSTORAGE_PASSWORD, else it is asked for. What it does is what the
README's curl examples do, done well:
- upload: only the file's data is sent (holes found with SEEK_DATA/SEEK_HOLE are declared, never
  sent), each chunk straight from the page cache to the socket (sendfile); after a dropped connection
  it asks the server what is missing and sends only that (--resume ID picks up an upload of an
  earlier run); then it follows the job that writes the volume until it ends.
- download: see ``download`` below.
Exit status: 0 done, 1 the server or the job said no (the reason is printed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import os
import sys
import urllib.parse

CHUNK_BYTES = 8 * 1024 * 1024  # as the browser's uploader (static/js/upload.js)
RETRIES = 5  # reconnections in a row before giving up
JOB_POLL_SECONDS = 0.05


class TransferError(Exception):
    """The server refused something; the message says what."""


class Session:
    """One keep-alive HTTP connection, logged in with a Django session and a CSRF token."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransferError(f"--url must look like http://host:port, not {url!r}")
        self.scheme, self.netloc, self.base = parts.scheme, parts.netloc, parts.path.rstrip("/")
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

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
        if response.status != 302 or "sessionid" not in self.cookies:
            raise TransferError(f"login as {user} failed: wrong user name or password?")


def _explain(status: int, parsed: dict) -> str:
    message = parsed.get("error") or f"HTTP {status}"
    errors = parsed.get("errors") or {}
    details = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items())
    return f"{message} {details}".strip()


# -- upload -----------------------------------------------------------------------


def upload(session: Session, path: str, pool: int, volume: str, *, capacity: str | None = None,
           replace: bool = False, resume: str | None = None, quiet: bool = False) -> dict:
    raise NotImplementedError


# -- download ---------------------------------------------------------------------


def download(session: Session, volume_id: int, out_path: str, *, sparse: bool = False, quiet: bool = False) -> dict:
    raise NotImplementedError


# -- command line -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("VIRTSTORAGE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--user", default=os.environ.get("VIRTSTORAGE_USER") or getpass.getuser())
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
    password = os.environ.get("VIRTSTORAGE_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    session = Session(args.url)
    try:
        session.login(args.user, password)
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
