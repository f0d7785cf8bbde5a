"""The simulated users of the load test (bench/loadtest.py starts the app and runs locust with this file).

Members, operators and admins log in through the login form, browse the dashboard, the big pool's page and its
volume table (pages, sorts, searches), volume pages and the jobs list; members and operators file provisioning
requests and upload a few small files each through the JSON chunk protocol, then follow the upload's job over
SSE to its end. Every timing is collected by name and written to LOADTEST_TIMINGS when locust quits.

Reads LOADTEST_CONFIG (JSON written by loadtest.py): pool, team, volume ids, accounts by role, password.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
import uuid
from collections import defaultdict

from locust import HttpUser, between, events, task

CONFIG = json.loads(open(os.environ["LOADTEST_CONFIG"]).read())
UPLOADS_PER_USER = int(CONFIG["uploads_per_user"])
SSE_TIMEOUT = float(CONFIG["sse_timeout"])
CHUNK = 256 * 1024
UPLOAD_SIZES = (64 * 1024, 256 * 1024, 700 * 1024, 1024 * 1024)
SORTS = ("name", "-name", "capacity", "-capacity", "allocation", "-allocation", "format", "-format")
PAGES = max(1, CONFIG["volume_count"] // 50)
_STATE = re.compile(r'data-state="(\w+)"')

# -- Every request's time and outcome, by name: loadtest.py computes the percentiles from these. --------------
# timings: [seconds since the test started, milliseconds taken] of each request
timings: dict[str, list[tuple[float, float]]] = defaultdict(list)
failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
started = [time.monotonic()]


@events.test_start.add_listener
def _started(**_) -> None:
    started[0] = time.monotonic()


@events.request.add_listener
def _collect(name: str, response_time: float, exception: BaseException | None, **_) -> None:
    timings[name].append((round(time.monotonic() - started[0], 3), response_time))
    if exception is not None:
        failures[name][str(exception)[:300]] += 1


@events.quitting.add_listener
def _write(**_) -> None:
    with open(os.environ["LOADTEST_TIMINGS"], "w") as out:
        json.dump({"timings": timings, "failures": failures}, out)


class Visitor(HttpUser):
    """What every account does: log in, then browse."""

    abstract = True
    wait_time = between(1, 3)
    role = ""
    _numbers = itertools.count()

    def on_start(self) -> None:
        accounts = CONFIG["accounts"][self.role]
        self.username = accounts[next(Visitor._numbers) % len(accounts)]
        self.uploads = 0
        self.client.get("/accounts/login/", name="login: form")
        with self.client.post("/accounts/login/", name="login: post", catch_response=True, allow_redirects=False,
                              data={"username": self.username, "password": CONFIG["password"], "next": "/",
                                    "csrfmiddlewaretoken": self.csrf}) as r:
            if r.status_code != 302:
                r.failure(f"login of {self.username} answered {r.status_code}")

    @property
    def csrf(self) -> str:
        return self.client.cookies.get("csrftoken", "")

    def page(self, url: str, name: str, **params) -> None:
        self.client.get(url, params=params, name=name)

    @task(3)
    def dashboard(self) -> None:
        self.page("/", "page: dashboard")

    @task(3)
    def pool(self) -> None:
        self.page(f"/pools/{CONFIG['pool']}/", "page: pool")

    @task(3)
    def volume_table(self) -> None:
        self.client.get(f"/pools/{CONFIG['pool']}/volumes/", name="table: page and sort",
                        headers={"HX-Request": "true"},
                        params={"page": random.randint(1, PAGES), "sort": random.choice(SORTS)})

    @task(2)
    def volume_search(self) -> None:
        self.client.get(f"/pools/{CONFIG['pool']}/volumes/", name="table: search", headers={"HX-Request": "true"},
                        params={"q": f"vol-{random.randint(0, 999):03d}", "sort": random.choice(SORTS)})

    @task(3)
    def volume(self) -> None:
        self.page(f"/volumes/{random.choice(CONFIG['volumes'])}/", "page: volume")

    @task(2)
    def jobs(self) -> None:
        self.page("/jobs/", "page: jobs")


class Requester(Visitor):
    """A team member: also files provisioning requests and uploads small files."""

    abstract = True

    @task(1)
    def file_request(self) -> None:
        form_url = f"/requests/new/in-pool/{CONFIG['pool']}/"
        self.page(form_url, "page: request form")
        with self.client.post(form_url, name="form: file request", catch_response=True, allow_redirects=False,
                              data={"csrfmiddlewaretoken": self.csrf, "team": CONFIG["team"],
                                    "name": f"req-{uuid.uuid4().hex[:12]}.qcow2", "capacity": "1G",
                                    "format": "qcow2", "provisioning": "off", "backing": "",
                                    "purpose": "load test"}) as r:
            if r.status_code != 302:
                r.failure(f"the request form answered {r.status_code}")
                return
        self.page(r.headers["Location"], "page: request")

    @task(1)
    def upload(self) -> None:
        if self.uploads >= UPLOADS_PER_USER:
            return
        self.uploads += 1
        data = os.urandom(random.choice(UPLOAD_SIZES))
        name = f"load-{uuid.uuid4().hex[:12]}.img"
        headers = {"X-CSRFToken": self.csrf, "Accept": "application/json"}
        with self.client.post("/volumes/uploads/", name="upload: create", catch_response=True, headers=headers,
                              json={"pool": CONFIG["pool"], "volume": name, "mode": "new", "size": len(data),
                                    "format": "raw", "filename": name}) as r:
            if r.status_code != 201:
                r.failure(f"create answered {r.status_code}: {r.text[:200]}")
                return
            upload = r.json()
        for offset in range(0, len(data), CHUNK):
            piece = data[offset:offset + CHUNK]
            with self.client.put(upload["chunks_url"], data=piece, name="upload: chunk", catch_response=True,
                                 headers={**headers, "Content-Range":
                                          f"bytes {offset}-{offset + len(piece) - 1}/{len(data)}"}) as r:
                if r.status_code != 200:
                    r.failure(f"chunk answered {r.status_code}: {r.text[:200]}")
                    return
        completed_at = time.perf_counter()
        with self.client.post(upload["complete_url"], name="upload: complete", headers=headers,
                              catch_response=True) as r:
            if r.status_code != 202:
                r.failure(f"complete answered {r.status_code}: {r.text[:200]}")
                return
            events_url = r.json()["events_url"]
        self.follow(events_url, completed_at)

    def follow(self, events_url: str, since: float) -> None:
        """Read the job's SSE stream until its end event (or SSE_TIMEOUT); the time from complete to the
        job's end is recorded as its own entry, failed unless the job succeeded. "sse: open" is the time
        to the stream's headers."""
        state, error = "", None
        try:
            with self.client.get(events_url, name="sse: open", stream=True, timeout=(5, 30), catch_response=True,
                                 headers={"Accept": "text/event-stream"}) as r:
                if r.status_code != 200:
                    r.failure(f"the event stream answered {r.status_code}")
                    raise RuntimeError(f"the event stream answered {r.status_code}")
                r.success()  # recorded when the block ends, with the time its headers took
                state = self._read_to_end(r, since)
            if state != "succeeded":
                error = RuntimeError(f"the upload's job ended {state or 'without a state'}")
        except Exception as exc:  # noqa: BLE001 (any failure of the stream is the entry's failure)
            error = exc
        self.environment.events.request.fire(
            request_type="SSE", name="sse: upload job to its end", response_time=(time.perf_counter() - since) * 1000,
            response_length=0, exception=error, context={})

    @staticmethod
    def _read_to_end(response, since: float) -> str:
        """The job's last state in the stream, read up to its end event."""
        state, event = "", ""
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "end":
                    return state
            elif line.startswith("data:") and event == "job" and (found := _STATE.search(line)):
                state = found[1]
            if time.perf_counter() - since > SSE_TIMEOUT:
                raise TimeoutError(f"the job did not end within {SSE_TIMEOUT:.0f} s (last state {state})")
        raise ConnectionError(f"the event stream ended without an end event (last state {state})")


class Member(Requester):
    weight = 8
    role = "member"


class Operator(Requester):
    weight = 1
    role = "operator"

    @task(1)
    def approvals(self) -> None:
        self.page("/requests/approvals/", "page: approvals")


class Admin(Visitor):
    weight = 1
    role = "admin"

    @task(1)
    def approvals(self) -> None:
        self.page("/requests/approvals/", "page: approvals")

    @task(1)
    def audit(self) -> None:
        self.page("/audit/", "page: audit")
