"""A killed test run leaves its test database behind (Django drops it only at the end of a run): the next run
removes those whose run is gone, and never one whose run still goes (runs go side by side on one server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from psycopg import sql

from tests.conftest import postgres_server, remove_leftover_test_databases, remove_orphaned_wal


def _dead_pid() -> int:
    """A pid no process has now."""
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


def test_a_killed_runs_test_database_is_removed_and_a_live_runs_kept():
    db = settings.DATABASES["default"]
    dead, live = _dead_pid(), os.getppid()  # the parent: a live process that is not this run
    if db["ENGINE"] == "django.db.backends.sqlite3":
        folder = Path(db["TEST"]["NAME"]).parent
        paths = {pid: folder / f"test-virtstorage-{pid}.sqlite3" for pid in (dead, live)}
        wal = folder / f"test-virtstorage-{dead}.sqlite3-wal"
        for path in (*paths.values(), wal):
            path.write_bytes(b"")
        try:
            remove_leftover_test_databases()
            assert not paths[dead].exists() and not wal.exists()
            assert paths[live].exists() and Path(db["NAME"]).exists(), "this run's and a live run's stay"
        finally:
            paths[live].unlink(missing_ok=True)
        return
    prefix = db["TEST"]["NAME"].rsplit("_", 1)[0] + "_"
    names = {pid: f"{prefix}{pid}" for pid in (dead, live)}
    with postgres_server() as conn:
        for name in names.values():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        remove_leftover_test_databases()
        with postgres_server() as conn:
            present = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
        assert names[dead] not in present
        assert names[live] in present and db["NAME"] in present, "this run's and a live run's stay"
    finally:
        with postgres_server() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(names[live])))


def test_a_removed_sqlite_databases_wal_files_go_and_a_present_ones_stay(tmp_path):
    gone, present = tmp_path / "gone.sqlite3", tmp_path / "present.sqlite3"
    present.write_bytes(b"")
    files = [Path(f"{database}{suffix}") for database in (gone, present) for suffix in ("-wal", "-shm")]
    for path in files:
        path.write_bytes(b"")
    remove_orphaned_wal(gone)
    remove_orphaned_wal(present)
    assert [path.exists() for path in files] == [False, False, True, True]


pytestmark = pytest.mark.django_db
