"""Fixtures on real services: libvirtd, Redis, a Celery worker and the ASGI server.

Nothing here is mocked and nothing is skipped: a missing service fails the run
with a message that says what to start (`make test` starts all of them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.procfile import procfile_web_args

ROOT = Path(__file__).resolve().parent.parent
# Tests get their own Celery queue so a `make run` worker on the same Redis never takes their jobs.
# Django settings may be loaded before this file, so the queue is also set on the Celery app below.
TEST_QUEUE = f"virtstorage-test-{os.getpid()}"
os.environ["CELERY_QUEUE"] = TEST_QUEUE
# ...and their own Redis keys and channels: this run's job 5 is not `make run`'s job 5 (settings.REDIS_KEY_PREFIX).
os.environ["REDIS_KEY_PREFIX"] = TEST_QUEUE
os.environ.setdefault("JOB_STALE_SECONDS", "15")
# Mail the worker and server send goes to files here, never to a real server (tests/notifications reads them).
TEST_MAIL_DIR = Path(tempfile.gettempdir()) / f"virtstorage-test-mail-{os.getpid()}"
# Upload staging files go here, not into var/uploads: a refused or failed upload keeps its file until it
# expires (24 h), and 8 of them were left in the developer's var/uploads by each run. Removed at the end.
TEST_UPLOAD_DIR = Path(tempfile.gettempdir()) / f"virtstorage-test-uploads-{os.getpid()}"
os.environ["UPLOAD_STAGING_DIR"] = str(TEST_UPLOAD_DIR)


def _pool_roots_with_tempdir() -> list[str]:
    """Tests define pools in temp dirs: the temp dir is a pool root for them, next to the configured ones.

    Django's settings may be loaded before this file, so the list goes into them as well as into the
    environment the worker and server processes inherit; a test narrows it with the `settings` fixture.
    """
    from django.conf import settings

    roots = [tempfile.gettempdir(), *(r for r in settings.POOL_ROOTS if r != tempfile.gettempdir())]
    settings.POOL_ROOTS = roots
    os.environ["POOL_ROOTS"] = os.pathsep.join(roots)
    return roots


TEST_POOL_ROOTS = _pool_roots_with_tempdir()


@pytest.fixture(scope="session", autouse=True)
def _test_upload_dir() -> Iterator[Path]:
    """This run's staging directory (TEST_UPLOAD_DIR), in the settings of this process as in the environment the
    worker and server processes inherit (the settings may be loaded before this file); removed at the end."""
    from django.conf import settings

    settings.UPLOAD_STAGING_DIR = TEST_UPLOAD_DIR
    TEST_UPLOAD_DIR.mkdir(mode=0o700, exist_ok=True)
    try:
        yield TEST_UPLOAD_DIR
    finally:
        shutil.rmtree(TEST_UPLOAD_DIR, ignore_errors=True)
LIBVIRT_URI = os.environ.get("TEST_LIBVIRT_URI", "qemu:///system")
TEST_POOL_PREFIX = "vstest-"


def run_manage(*args: str, var: Path, umask: int | None = None, **env: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in a process of its own, as `make run` or a service manager starts it: var/ (and its
    SQLite database) at var, none of this test run's own settings, env added; under umask if given. It must
    succeed."""
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DEBUG", "HTTPS", "SECRET_KEY", "DATABASE_URL", "UPLOAD_STAGING_DIR", "DEMO_POOL_DIR"}}
    clean.update(VIRTSTORAGE_VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{var / 'virtstorage.sqlite3'}", **env)
    command = [sys.executable, "manage.py", *args]
    if umask is not None:
        command = ["sh", "-c", f'umask {umask:03o}; exec "$@"', "sh", *command]
    result = subprocess.run(command, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def virsh(*args: str, check: bool = True) -> str:
    """Run virsh against the test libvirtd: the independent witness of what libvirt holds."""
    proc = subprocess.run(["virsh", "-q", "-c", LIBVIRT_URI, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _require_services() -> None:
    problems = []
    if shutil.which("virsh") is None:
        problems.append("virsh is not installed (apt-get install libvirt-clients), run `make test`")
    else:
        proc = subprocess.run(["virsh", "-c", LIBVIRT_URI, "version"], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            problems.append(f"libvirtd is not answering at {LIBVIRT_URI}: start it with `libvirtd -d` "
                            f"(or `systemctl start libvirtd`): {proc.stderr.strip()}")
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis is not answering at {settings.REDIS_URL}: start it with "
                        f"`redis-server --daemonize yes` (or `systemctl start redis-server`): {exc}")
    if problems:
        pytest.exit("Required services are missing:\n  - " + "\n  - ".join(problems), returncode=3)


def pytest_configure(config) -> None:
    _flush_by_delete()


def _flush_by_delete() -> None:
    """pytest-django empties the test database after each transactional test with Django's flush, which on
    PostgreSQL is one TRUNCATE of every table: 0.4 s here each time (a truncated table gets new files, made and
    synced at the commit), against 6 ms for a DELETE of each table, which after a test holds a few rows. Django
    makes its foreign keys deferrable, so the DELETEs go in any order with the constraints deferred to the
    commit (execute_sql_flush runs them in one transaction). Reset sequences or a cascade still truncate."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences: bool = False, allow_cascade: bool = False) -> list[str]:
        if reset_sequences or allow_cascade or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET CONSTRAINTS ALL DEFERRED;", *(f"DELETE FROM {self.quote_name(table)};" for table in tables)]

    DatabaseOperations.sql_flush = sql_flush


@pytest.fixture(scope="session", autouse=True)
def services() -> None:
    _require_services()
    from django.conf import settings

    from virtstorage.celery import app

    app.conf.task_default_queue = TEST_QUEUE
    settings.REDIS_KEY_PREFIX = TEST_QUEUE  # settings may have been loaded before this file set the variable


@pytest.fixture(autouse=True)
def _default_language() -> None:
    """Each test starts in the settings' language. A request through Django's test client leaves the language
    it activated on the thread (Django's LocaleMiddleware does too), and a test that asks for Spanish pages
    would otherwise decide the language of the next test's sizes and messages."""
    from django.utils import translation

    translation.deactivate()


def _cleanup_pool(name: str) -> None:
    names = virsh("vol-list", name, check=False)
    for line in names.splitlines():
        vol = line.split()[0] if line.split() else ""
        if vol:
            virsh("vol-delete", "--pool", name, vol, check=False)
    virsh("pool-destroy", name, check=False)
    virsh("pool-undefine", name, check=False)


def _owned_by_another_live_run(name: str) -> bool:
    """Test runs go side by side on one libvirtd: never sweep a pool or VM whose run (pid in its name) lives."""
    return _another_live_run(name[len(TEST_POOL_PREFIX):].split("-", 1)[0])


def _another_live_run(owner: str) -> bool:
    """Whether owner (a pid, as text) is a test run other than this one that still runs."""
    if not owner.isdigit() or int(owner) == os.getpid():
        return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def postgres_server():
    """A connection (autocommit) to the maintenance database of the test database's PostgreSQL server, as the
    settings' role: for what is done to a database from outside it (create, drop, end its sessions)."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                           password=db["PASSWORD"], dbname="postgres", autocommit=True)


@pytest.fixture(scope="session", autouse=True)
def _remove_leftover_test_databases(services) -> None:
    remove_leftover_test_databases()


def pytest_sessionfinish(session) -> None:
    """After every fixture's teardown, so after Django removed this run's SQLite test database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        remove_orphaned_wal(Path(db["TEST"]["NAME"]))


def remove_orphaned_wal(database: Path) -> None:
    """The "-wal" and "-shm" files of a SQLite database that is gone. Django removes only the database file, and
    SQLite removes these when the last connection closes: the fixtures' Celery pool processes never close theirs
    (stopped by a signal, they exit at once), so these stayed behind until the next run swept them."""
    if not database.exists():
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)


def remove_leftover_test_databases() -> None:
    """Test databases of earlier, killed runs (their pid in the name, as settings.py names them) would otherwise
    pile up: on PostgreSQL test_<NAME>_<pid>, on SQLite var/test-virtstorage-<pid>.sqlite3 and its WAL files."""
    from django.conf import settings

    db = settings.DATABASES["default"]

    def dead(owner: str) -> bool:
        return owner.isdigit() and int(owner) != os.getpid() and not _another_live_run(owner)

    if db["ENGINE"] == "django.db.backends.sqlite3":
        for path in Path(db["TEST"]["NAME"]).parent.glob("test-virtstorage-*.sqlite3*"):
            if dead(path.name.split(".", 1)[0].rsplit("-", 1)[1]):
                path.unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    prefix = db["TEST"]["NAME"].rsplit("_", 1)[0] + "_"  # test_<NAME>_, before and after pytest-django's switch
    with postgres_server() as conn:
        found = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]).fetchall()
        for (name,) in found:
            if dead(name[len(prefix):]):
                try:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                except psycopg.Error as exc:  # housekeeping: another role's session on it, say; the run goes on
                    print(f"could not drop the leftover test database {name}: {exc}")


@pytest.fixture(scope="session", autouse=True)
def _remove_leftover_test_pools(services) -> Iterator[None]:
    """Pools and VMs of an earlier, killed run would otherwise pile up on the host."""
    def leftovers(*listing: str) -> list[str]:
        names = [line.strip() for line in virsh(*listing, check=False).splitlines()]
        return [n for n in names if n.startswith(TEST_POOL_PREFIX) and not _owned_by_another_live_run(n)]

    def sweep() -> None:
        for name in leftovers("list", "--all", "--name"):
            virsh("destroy", name, check=False)  # a running VM that is only undefined keeps running
            virsh("undefine", name, check=False)
        for name in leftovers("pool-list", "--all", "--name"):
            _cleanup_pool(name)
    sweep()
    yield
    sweep()


class ScratchPool:
    """A throwaway `dir` pool in a temp directory, on the real libvirtd."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def create_volume(self, name: str, size: str, fmt: str = "raw", *, prealloc: bool = False,
                      backing: str | None = None) -> str:
        args = ["vol-create-as", self.name, name, size, "--format", fmt]
        if prealloc:
            args += ["--allocation", size]
            if fmt == "qcow2":
                args += ["--prealloc-metadata"]
        else:
            args += ["--allocation", "0"]
        if backing:
            args += ["--backing-vol", backing, "--backing-vol-format", "qcow2" if backing.endswith("qcow2") else "raw"]
        virsh(*args)
        path = self.path / name
        # Written back now: a file's allocation (st_blocks) may change when the kernel writes it back, and tests
        # compare the app's reading with qemu-img's and virsh's taken a moment apart.
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return str(path)

    def vol_info(self, name: str) -> dict[str, str]:
        out = virsh("vol-info", "--bytes", "--pool", self.name, name)
        return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def make_scratch_pool(base: Path) -> ScratchPool:
    name = f"{TEST_POOL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}"
    path = base / name
    path.mkdir(parents=True)
    virsh("pool-define-as", name, "dir", "--target", str(path))
    virsh("pool-build", name)
    virsh("pool-start", name)
    return ScratchPool(name, path)


def cloning(scratch: ScratchPool, done: threading.Event) -> threading.Thread:
    """A thread (not started) that clones a 768 MiB volume of data in the pool, setting done at its end: libvirt
    builds the copy for a while, and refuses to rescan the pool meanwhile ("asynchronous jobs running")."""
    scratch.create_volume("source.img", "768M", "raw", prealloc=True)
    with open(scratch.path / "source.img", "r+b") as f:
        for _ in range(96):
            f.write(b"\x5a" * 8 * 2**20)

    def clone() -> None:
        try:
            virsh("vol-clone", "--pool", scratch.name, "source.img", "copy.img")
        finally:
            done.set()

    return threading.Thread(target=clone)


@pytest.fixture
def scratch_pool(tmp_path_factory) -> Iterator[ScratchPool]:
    pool = make_scratch_pool(tmp_path_factory.mktemp("pools"))
    try:
        yield pool
    finally:
        _cleanup_pool(pool.name)
        shutil.rmtree(pool.path, ignore_errors=True)


@pytest.fixture
def filled_pool(scratch_pool: ScratchPool) -> ScratchPool:
    """Raw and qcow2 volumes, thin and preallocated, and a qcow2 overlay on a base."""
    scratch_pool.create_volume("raw-thin.img", "64M", "raw")
    scratch_pool.create_volume("raw-prealloc.img", "16M", "raw", prealloc=True)
    base = scratch_pool.create_volume("base.qcow2", "128M", "qcow2")
    scratch_pool.create_volume("qcow2-thin.qcow2", "1G", "qcow2")
    scratch_pool.create_volume("overlay.qcow2", "128M", "qcow2", backing=base)
    return scratch_pool


# -- Django objects ---------------------------------------------------------

@pytest.fixture
def local_host(transactional_db):
    """The local libvirtd as a Host, with the pool types a check or sync records (the define page offers those
    and never asks libvirt itself); its status stays "not checked yet"."""
    from django.utils import timezone

    from hosts.models import Host
    from virtstorage.virt import open_host
    from virtstorage.virt import pools as vpools

    with open_host(LIBVIRT_URI) as lv:
        pool_types = Host.pool_types_json(vpools.supported_pool_types(lv))
    return Host.objects.create(name="local", uri=LIBVIRT_URI, pool_types=pool_types, pool_types_at=timezone.now())


@pytest.fixture(params=["direct", "libvirt"])
def io_path(request, local_host) -> str:
    """Runs a transfer test both ways the app moves bytes for a host that is this machine: direct
    file I/O (Host.direct_io, the default) and libvirt's streams (what a remote host gets)."""
    local_host.direct_io = request.param == "direct"
    local_host.save(update_fields=["direct_io"])
    return request.param


def assert_moved_by(job, io_path: str) -> None:
    """The job's log says its bytes went the way io_path asked for."""
    from virtstorage.virt.localfile import VOLUME_FILE

    direct = VOLUME_FILE in job.log
    assert direct == (io_path == "direct"), f"{io_path}: {job.log}"


def _user(username: str, role: str, team_role: str = "operator"):
    """An account as the app had them before teams: a member may do everything but admin work, which is an
    operator of the default team (that may use every pool). Team tests make their own."""
    from django.contrib.auth import get_user_model

    from accounts.roles import MEMBER, grant
    from accounts.teams import join

    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery")
    grant(user, role)
    if role == MEMBER:
        join(user, role=team_role)
    return user


@pytest.fixture
def member(transactional_db):
    return _user("mia", "member")


@pytest.fixture
def admin_user(transactional_db):
    return _user("ada", "admin")


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def synced(local_host, filled_pool):
    """The filled pool, synced into the inventory; returns (pool row, scratch pool)."""
    from inventory.sync import sync_host
    from pools.models import StoragePool

    assert sync_host(local_host, pool_names=[filled_pool.name]) is not None
    return StoragePool.objects.get(host=local_host, name=filled_pool.name), filled_pool


@pytest.fixture
def domain_using(synced) -> Iterator[str]:
    """A defined (not running) VM with one disk by path and one by pool and volume name."""
    pool, scratch = synced
    name = f"{TEST_POOL_PREFIX}{os.getpid()}-vm-{uuid.uuid4().hex[:8]}"
    root = ET.Element("domain", type="qemu")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = "64"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    devices = ET.SubElement(root, "devices")
    by_path = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(by_path, "driver", name="qemu", type="raw")
    ET.SubElement(by_path, "source", file=str(scratch.path / "raw-thin.img"))
    ET.SubElement(by_path, "target", dev="vda", bus="virtio")
    by_name = ET.SubElement(devices, "disk", type="volume", device="disk")
    ET.SubElement(by_name, "driver", name="qemu", type="qcow2")
    ET.SubElement(by_name, "source", pool=scratch.name, volume="qcow2-thin.qcow2")
    ET.SubElement(by_name, "target", dev="vdb", bus="virtio")
    xml_path = scratch.path.parent / f"{name}.xml"
    xml_path.write_text(ET.tostring(root, encoding="unicode"))
    virsh("define", str(xml_path))
    try:
        yield name
    finally:
        virsh("undefine", name, check=False)


# -- A remote host that is this machine ---------------------------------------

LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"  # where qemu:///system's daemon listens


class LibvirtOverTcp:
    """This machine's libvirtd reached as qemu+tcp://127.0.0.1:PORT/system: remote to the app (and to virsh) by
    its URI, without making libvirtd listen on the network. Each TCP connection is copied both ways onto a
    connection to libvirtd's own socket."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.uri = f"qemu+tcp://127.0.0.1:{self._server.getsockname()[1]}/system"
        self.connections = 0  # opened through this URI so far: what a test expects to cross "the network"
        self._sockets: list[socket.socket] = []  # every end it copies between, shut down by close()
        threading.Thread(target=self._accept, name="libvirt-over-tcp", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            daemon = socket.socket(socket.AF_UNIX)
            daemon.connect(LIBVIRT_SOCKET)
            self._sockets += [client, daemon]
            for source, sink in ((client, daemon), (daemon, client)):
                threading.Thread(target=self._copy, args=(source, sink), daemon=True).start()

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 20):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(source, sink)
            source.close()  # the other direction's thread closes the other socket

    def close(self) -> None:
        """Stop accepting and hang up every connection still open. A libvirt connection left open through
        this URI would otherwise be closed at interpreter exit, when the daemon threads copying its bytes are
        frozen: virConnectClose would wait for an answer forever and pytest would never exit."""
        self._server.close()
        _hang_up(*self._sockets)


def _hang_up(*ends: socket.socket) -> None:
    for end in ends:
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@pytest.fixture(scope="session")
def libvirt_over_tcp() -> Iterator[LibvirtOverTcp]:
    from virtstorage.virt import connection

    forwarder = LibvirtOverTcp()
    try:
        yield forwarder
    finally:
        connection.forget_connection(forwarder.uri)  # closed while its bytes can still cross
        forwarder.close()


@pytest.fixture(scope="session")
def remote_libvirt_uri(libvirt_over_tcp: LibvirtOverTcp) -> str:
    """A qemu+tcp URI of this machine's libvirtd (see LibvirtOverTcp)."""
    return libvirt_over_tcp.uri


# -- Processes: Celery worker and ASGI server on the test database ----------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url(db: dict) -> str:
    """The test database (pytest-django has switched NAME to it) as a URL for the worker and server processes."""
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    from urllib.parse import quote

    return (f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{quote(db['NAME'])}")


def _process_env() -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env["DATABASE_URL"] = _database_url(settings.DATABASES["default"])
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env["DOWNLOAD_IDLE_SECONDS"] = "5"  # a client that hangs up is noticed soon whatever the server says
    env.update(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(TEST_MAIL_DIR))
    return env


class ManagedProcess:
    def __init__(self, name: str, args: list[str], log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env or {}  # on top of the tests' own (_process_env): another VAR_DIR, a setting
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env={**_process_env(), **self.env}, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        raise NotImplementedError

    @contextmanager
    def running(self) -> Iterator[ManagedProcess]:
        """Started and ready for the block, stopped after it whatever happens."""
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            self.stop()

    def stop(self, sig: int = 15) -> None:
        """Stop the process and every process of its group (granian's workers, Celery's pool), waiting until they
        are all gone: one still exiting would hold its database connection while the test database is dropped."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if self.proc:
            _reap_group(self.proc.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _reap_group(pgid: int, timeout: float = 10) -> None:
    """Wait for the live processes left in group pgid to exit; SIGKILL them after timeout seconds. A zombie
    counts as gone: its connections are closed, and PID 1 may not be an init that reaps it."""
    deadline = time.monotonic() + timeout
    while live := _live_members(pgid):
        if time.monotonic() > deadline:
            for pid in live:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout  # a killed process exits at once
        time.sleep(0.1)


def _live_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


class CeleryWorker(ManagedProcess):
    @classmethod
    def on_queue(cls, queue: str, log_path: Path, *, concurrency: int = 1, name: str = "near",
                 env: dict[str, str] | None = None) -> CeleryWorker:
        """A worker that takes the jobs of queue and its transfers twin only (jobs.runner.queue_for)."""
        from jobs.runner import TRANSFER_QUEUE_SUFFIX

        return cls(f"celery-{name}", [
            sys.executable, "-m", "celery", "-A", "virtstorage", "worker", "--loglevel=INFO",
            f"--concurrency={concurrency}", f"--queues={queue},{queue}{TRANSFER_QUEUE_SUFFIX}",
            f"--hostname={name}-{queue}@%h", "--without-mingle", "--without-gossip"], log_path, env=env)

    def wait_ready(self, timeout: float = 60) -> None:
        from virtstorage.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Celery worker exited:\n{self.log_tail()}")
            if "ready." in self.log_tail(200):
                replies = app.control.ping(timeout=1.0)
                if replies:
                    return
            time.sleep(0.3)
        raise AssertionError(f"Celery worker did not become ready:\n{self.log_tail()}")

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready()


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    """Without pytest-django's "_gw0" suffix for an xdist worker: settings.py names the test database by the pid
    of the process, an xdist worker's too, which is what the leftover sweep reads to tell a killed run's."""


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, with this process's connection pool (PostgreSQL, DB_POOL_MAX_SIZE) closed
    and turned off before the database is dropped: a connection Django "closes" goes back to the pool, which
    holds it open and makes the DROP fail; and Django makes a new pool (with a connection of its own) whenever
    it next looks at a connection whose settings name one."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for conn in connections.all(initialized_only=True):
            conn.close()
            if conn.settings_dict.get("OPTIONS", {}).get("pool"):
                conn.close_pool()
                del conn.settings_dict["OPTIONS"]["pool"]
        _end_stray_sessions(connections["default"].settings_dict)


def _end_stray_sessions(db: dict) -> None:
    """A connection a test's thread left open (Django closes the main thread's only) would make the DROP fail and
    leave the test database behind: each is named here, then ended. Every process the fixtures started is
    stopped by now, so what is left is this process's."""
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return
    with postgres_server() as conn:
        stray = conn.execute("SELECT pid, client_port, left(query, 120) FROM pg_stat_activity WHERE datname = %s",
                             [db["NAME"]]).fetchall()
        for pid, port, query in stray:
            print(f"\nended a connection left open on the test database (port {port}, last query: {query})")
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[CeleryWorker]:
    """A real Celery worker (prefork, 2 processes) on the test database and the test-only queues (jobs and
    transfers)."""
    worker = CeleryWorker.on_queue(TEST_QUEUE, tmp_path_factory.mktemp("logs") / "celery.log", concurrency=2,
                                   name="test")
    try:
        with worker.running():
            yield worker
    finally:
        shutil.rmtree(TEST_MAIL_DIR, ignore_errors=True)


class AsgiServer(ManagedProcess):
    def __init__(self, port: int, log_path: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        # More than one worker (and more than one server, on other ports) is a production topology.
        extra = ["--workers", str(workers)] if workers > 1 else []
        super().__init__("granian", procfile_web_args("127.0.0.1", port) + extra, log_path, env=env)
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"granian exited:\n{self.log_tail()}")
            try:
                httpx.get(self.url + "/accounts/login/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"granian did not start:\n{self.log_tail()}")


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, tmp_path_factory) -> Iterator[AsgiServer]:
    """The real ASGI server as `make run` starts it (Django's live_server cannot stream)."""
    with AsgiServer(_free_port(), tmp_path_factory.mktemp("logs") / "granian.log").running() as server:
        yield server


def database_connections(pid: int) -> set[str]:
    """The open files or sockets of process pid that are a connection to the test database: the SQLite file,
    or a TCP connection to the PostgreSQL server's port (as "socket:[inode]", which names one connection)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass  # closed meanwhile
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return {target for target in fds.values() if target == str(Path(db["NAME"]).resolve())}
    port = f"{int(db['PORT'] or 5432):04X}"
    held = {target for target in fds.values() if target.startswith("socket:[")}
    connected = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(f":{port}") and fields[3] == "01" and f"socket:[{fields[9]}]" in held:
                connected.add(f"socket:[{fields[9]}]")
    return connected


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll predicate until it returns a truthy value; fail with message after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def running_job(user, host, kind: str, **fields):
    """A job row as a worker leaves it once it has claimed it (running, started now): for tests that then play the
    worker's part themselves (JobContext.step, finish_inline) and watch a page follow the job."""
    from django.utils import timezone

    from jobs.models import Job

    return Job.objects.create(kind=kind, host=host, created_by=user, state=Job.State.RUNNING,
                              started_at=timezone.now(), **fields)


def wait_for_job(job_id: int, timeout: float = 120):
    """Wait until the job is in a final state; return it."""
    from jobs.models import Job

    def done():
        job = Job.objects.get(pk=job_id)
        return job if not job.is_active else None

    return wait_for(done, timeout=timeout, message=f"job {job_id} to finish")
