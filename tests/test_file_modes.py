"""var/ and what it holds (database, secret key, admin password, beat schedule, upload staging files)
are this account's alone, whatever the umask the processes are started with."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import run_manage

MiB = 1024 * 1024

pytestmark = pytest.mark.smoke  # bootstrap on the default database, SQLite


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def run_with_umask_000(*args: str, var: Path) -> subprocess.CompletedProcess:
    """`manage.py ARGS` as a careless service manager would start it: umask 000, var/ elsewhere."""
    return run_manage(*args, var=var, umask=0o000)


@pytest.fixture
def old_umask():
    """Files made as an older install made them (umask 022), in this process."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_install_is_private_whatever_the_umask(tmp_path):
    var = tmp_path / "var"  # bootstrap (settings, really) creates it
    run_with_umask_000("bootstrap", "--no-demo-pool", var=var)
    assert mode(var) == 0o700
    for name in ("virtstorage.sqlite3", "secret_key", "admin-password"):
        assert mode(var / name) == 0o600, name
    for name in ("virtstorage.sqlite3-wal", "virtstorage.sqlite3-shm"):
        if (var / name).exists():
            assert mode(var / name) == 0o600, name
    # Everything else a process of the app makes is private too: the beat schedule (a shelve, as
    # celery beat keeps it), files and directories.
    code = ("import shelve; from django.conf import settings; from pathlib import Path; "
            "shelve.open(settings.CELERY_BEAT_SCHEDULE_FILENAME).close(); "
            "d = Path(settings.VAR_DIR, 'uploads'); d.mkdir(); (d / '1.part').write_bytes(b'x')")
    run_with_umask_000("shell", "--no-imports", "-c", code, var=var)
    schedule = list(var.glob("celerybeat-schedule*"))
    assert schedule and all(mode(p) == 0o600 for p in schedule), [(p.name, oct(mode(p))) for p in schedule]
    assert mode(var / "uploads") == 0o700 and mode(var / "uploads" / "1.part") == 0o600
    # All of var/ but the static files (public: served to anyone, Django copies them 0644).
    private = [p for p in var.rglob("*") if "staticfiles" not in p.relative_to(var).parts]
    assert all(not mode(p) & 0o077 for p in private), [p for p in private if mode(p) & 0o077]


def test_bootstrap_makes_an_older_install_private(tmp_path, old_umask):
    var = tmp_path / "var"
    var.mkdir()
    (var / "uploads").mkdir()
    for name in ("admin-password", "celerybeat-schedule", "uploads/7.part"):
        (var / name).write_text("old\n")
    (var / "secret_key").write_text("an-old-secret-key-of-fifty-characters-or-so-000000\n")
    # An open connection in WAL mode keeps the -wal and -shm files there while bootstrap runs.
    db = sqlite3.connect(var / "virtstorage.sqlite3")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE old (x)")
        db.commit()
        files = [var / n for n in ("virtstorage.sqlite3", "virtstorage.sqlite3-wal", "virtstorage.sqlite3-shm",
                                   "secret_key", "admin-password", "celerybeat-schedule", "uploads/7.part")]
        assert mode(var) == 0o755 and mode(var / "uploads") == 0o755
        assert all(mode(p) == 0o644 for p in files), [(p.name, oct(mode(p))) for p in files]

        result = run_with_umask_000("bootstrap", "--no-demo-pool", var=var)

        assert mode(var) == 0o700 and mode(var / "uploads") == 0o700
        assert all(mode(p) == 0o600 for p in files), [(p.name, oct(mode(p))) for p in files]
        assert "Made" in result.stdout and "secret_key private (600)" in result.stdout
        assert (var / "secret_key").read_text().startswith("an-old-secret-key")  # kept, only closed
    finally:
        db.close()
    again = run_with_umask_000("bootstrap", "--no-demo-pool", var=var)  # nothing left to change
    assert "private (" not in again.stdout


def test_an_upload_staging_file_is_private_whatever_the_umask(member_client, synced):
    from volumes.models import Upload

    pool, _ = synced
    uploads = Path(settings.UPLOAD_STAGING_DIR)
    uploads.mkdir(mode=0o700, exist_ok=True)  # (made by the run's fixture, or now: never under umask 000)
    previous = os.umask(0)
    try:
        response = member_client.post("/volumes/uploads/", {"pool": pool.pk, "volume": "raw-thin.img",
                                                            "mode": "existing", "confirm": "raw-thin.img",
                                                            "size": str(MiB)})
    finally:
        os.umask(previous)
    assert response.status_code == 201, response.content
    upload = Upload.objects.get(pk=response.json()["id"])
    try:
        assert upload.staging_path.stat().st_size == MiB
        assert mode(upload.staging_path) == 0o600
    finally:
        upload.staging_path.unlink(missing_ok=True)


def test_this_process_umask_and_var_dir(tmp_path):
    """Importing the settings (every process does) set the umask and closed var/."""
    current = os.umask(0o077)
    os.umask(current)
    assert current == 0o077
    assert mode(Path(settings.VAR_DIR)) == 0o700
