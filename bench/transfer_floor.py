"""The floors the transfer benchmark holds the app to: a bare ASGI app served as the Procfile serves the app,
receiving and sending 1 GiB with the app's own client (the HTTP floor), and the app's receive path alone (the
staging of a replacing upload's chunks, whose job starts only at complete)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from bench.common import children, cpu_seconds, free_port, timed, virsh
from bench.transfer_app import App
from scripts import vstransfer
from scripts.procfile import procfile_web_args

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MiB = 1024 * 1024
GiB = 1024 * MiB
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))  # runs of each timing (the floors: the best of them)


async def bare_asgi_app(scope, receive, send) -> None:
    """No Django, no disk, no libvirt: the ASGI server's own floor for moving bytes over HTTP here.

    PUT: reads the body and drops it, or with BENCH_FLOOR_FILE set writes each message at the
    Content-Range offset into that file (the floor of receiving and keeping); GET: streams GiB of
    one reused 1 MiB block."""
    if scope["type"] != "http":
        return
    keep = os.environ.get("BENCH_FLOOR_FILE") if scope["method"] == "PUT" else None
    fd = os.open(keep, os.O_WRONLY | os.O_CREAT, 0o600) if keep else None
    ranges = dict(scope["headers"]).get(b"content-range", b"bytes 0-0/0")
    position = int(ranges.split(b" ")[1].split(b"-")[0])
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
        if fd is not None and message.get("body"):
            position += os.pwrite(fd, message["body"], position)
    if fd is not None:
        os.close(fd)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(GiB if scope["method"] == "GET" else 2).encode())]})
    if scope["method"] == "GET":
        for _ in range(GiB // MiB):
            await send({"type": "http.response.body", "body": _BLOCK, "more_body": True})
    await send({"type": "http.response.body", "body": b"{}" if scope["method"] != "GET" else b""})


_BLOCK = os.urandom(MiB)
_BARE_APP = "bench.transfer_floor:bare_asgi_app"


def http_floor(dense: Path) -> dict[str, float]:
    """Best of REPEAT, with the app's client through a bare ASGI app served as the Procfile serves the
    app: the dense file up in the client's own chunks (vstransfer.CHUNK_BYTES) dropped (up_s) and kept
    in a file (up_disk_s), with the server's CPU seconds; and 1 GiB down."""
    kept = dense.with_name("floor-kept.img")
    ports = {keep: free_port() for keep in (False, True)}
    servers = {keep: subprocess.Popen([*procfile_web_args("127.0.0.1", port)[:-1], _BARE_APP],
                                      cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                      env=dict(os.environ, BENCH_FLOOR_FILE=str(kept)) if keep else None)
               for keep, port in ports.items()}
    try:
        size = dense.stat().st_size
        for port in ports.values():
            _wait_for_port(port)

        def up(keep: bool) -> tuple[float, float]:
            session = vstransfer.Session(f"http://127.0.0.1:{ports[keep]}")
            os.sync()
            pids = [servers[keep].pid, *children(servers[keep].pid)]
            cpu = cpu_seconds(pids)
            with open(dense, "rb") as source:
                seconds = timed(_put_chunks, session, "/", source, size)
            session.reset()
            kept.unlink(missing_ok=True)
            return seconds, cpu_seconds(pids) - cpu

        def down() -> None:
            session = vstransfer.Session(f"http://127.0.0.1:{ports[False]}")
            response = session.request("GET", "/")
            with open(os.devnull, "wb") as sink:
                vstransfer._download_plain(response, sink.fileno(), GiB, vstransfer._Progress(True, GiB))
            session.reset()

        dropped, disk = min(up(False) for _ in range(REPEAT)), min(up(True) for _ in range(REPEAT))
        return {"up_s": dropped[0], "up_cpu_s": round(dropped[1], 2), "up_disk_s": disk[0],
                "up_disk_cpu_s": round(disk[1], 2), "down_s": min(timed(down) for _ in range(REPEAT))}
    finally:
        for server in servers.values():
            os.killpg(server.pid, 15)
            server.wait(20)


def _put_chunks(session: vstransfer.Session, url: str, source, size: int) -> dict:
    """The whole file in the client's chunk PUTs, as its upload sends dense data; the last answer."""
    for offset in range(0, size, vstransfer.CHUNK_BYTES):
        state = vstransfer._put_range(session, url, source, offset, min(vstransfer.CHUNK_BYTES, size - offset), size)
    return state


def _wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.1)


def receive_path(app: App, pool_name: str, dense: Path) -> dict:
    """The web's receive path alone, every run and the best of REPEAT: the dense file PUT in the client's
    chunks into an upload replacing a volume, until the last chunk's answer, then abandoned.

    A replacing upload's job starts at complete, so nothing but the web works while its bytes arrive; an
    upload into a new volume has its job copy them into the volume meanwhile, on the same two cores.
    The uploader is an operator of its own team (replacing needs one), with an API token."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Team
    from accounts.roles import grant
    from accounts.teams import join
    from accounts.tokens import issue
    from inventory.sync import sync_volumes
    from pools.models import PoolGrant, StoragePool

    size, name = dense.stat().st_size, "receive-dense.img"
    pool = StoragePool.objects.get(name=pool_name)
    pool.host.queue = ""  # staged on the web's disk, whichever way the cases before moved bytes
    pool.host.save(update_fields=["queue"])
    virsh("vol-create-as", pool_name, name, str(size), "--allocation", "0", "--format", "raw")
    sync_volumes(pool.host, [(pool_name, name)])
    user = get_user_model().objects.create_user("bench-receiver")
    grant(user, "member")
    team = Team.objects.create(name="bench-receivers")
    PoolGrant.objects.create(team=team, pool=pool)
    join(user, team, Membership.Role.OPERATOR)
    session = vstransfer.Session(app.url)
    session.use_token(issue(user, "bench")[1])
    runs = []
    for _ in range(REPEAT):
        upload = session.json("POST", "/volumes/uploads/", {"pool": pool.pk, "volume": name, "mode": "existing",
                                                            "size": size, "confirm": name})
        os.sync()
        with open(dense, "rb") as source:
            seconds, cpu, state = app.measured(_put_chunks, session, upload["chunks_url"], source, size)
        if state["received_bytes"] != size:
            raise RuntimeError(f"the upload received {state['received_bytes']} bytes, not {size}")
        session.json("DELETE", upload["url"])
        runs.append({"s": round(seconds, 3), "web_cpu_s": cpu.get("web", 0.0)})
    best = min(runs, key=lambda run: run["s"])
    return {"case": "receive_dense", "file_bytes": size, "receive_s": best["s"], "web_cpu_s": best["web_cpu_s"],
            "runs": runs}


def print_receive(receive: dict, floor: dict[str, float]) -> None:
    """The receive path against the floors (bench/results/receive_dense.json)."""
    receive = {**receive, "floor_up_s": floor["up_s"], "floor_up_cpu_s": floor["up_cpu_s"],
               "floor_up_disk_s": floor["up_disk_s"], "floor_up_disk_cpu_s": floor["up_disk_cpu_s"],
               "ratio": receive["receive_s"] / floor["up_s"], "ratio_disk": receive["receive_s"] / floor["up_disk_s"]}
    (RESULTS / "receive_dense.json").write_text(json.dumps(receive, indent=2) + "\n")
    print(f"receive: 1 GiB of dense chunks into a staging file in {receive['receive_s']:.2f} s, web "
          f"{receive['web_cpu_s']:.2f} CPU-s (runs: " + ", ".join(f"{run['s']:.2f}" for run in receive["runs"]) + ")")
    print(f"  floor: a bare ASGI app on the same server, same client and chunks: dropping the body "
          f"{floor['up_s']:.2f} s ({floor['up_cpu_s']:.2f} CPU-s), writing it to a file {floor['up_disk_s']:.2f} s "
          f"({floor['up_disk_cpu_s']:.2f} CPU-s); receive/floor {receive['ratio']:.2f}x, "
          f"receive/writing floor {receive['ratio_disk']:.2f}x")
