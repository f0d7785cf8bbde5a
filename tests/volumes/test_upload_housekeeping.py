"""Upload housekeeping: staging space is checked before a chunk is written, and uploads left
unfinished (with their staging files, and staging files nobody owns) are removed after a while."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.models import Job
from volumes.models import Upload
from volumes.upload_job import expire_uploads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    """Staging files of these tests live in a directory of their own: the sweep must never see a
    developer's real uploads."""
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"

MiB = 1024 * 1024


def _upload(pool, user, name: str, size: int = 4 * MiB, **fields) -> Upload:
    upload = Upload.objects.create(created_by=user, pool=pool, volume_name=name, size=size, capacity=size, **fields)
    upload.staging_path.parent.mkdir(parents=True, exist_ok=True)
    with open(upload.staging_path, "wb") as staging:
        staging.truncate(size)
    return upload


def test_a_chunk_that_would_eat_the_staging_reserve_is_refused(member_client, member, synced):
    pool, _ = synced
    upload = _upload(pool, member, "full.img")
    url = f"/volumes/uploads/{upload.pk}/chunks?offset=0"
    with override_settings(UPLOAD_STAGING_RESERVE_BYTES=2**62):
        r = member_client.put(url, data=os.urandom(MiB), content_type="application/octet-stream")
    assert r.status_code == 507 and "keeps" in r.json()["error"] and "Nothing was written" in r.json()["error"]
    upload.refresh_from_db()
    assert upload.received == [] and os.stat(upload.staging_path).st_blocks == 0
    # With room, the same chunk lands.
    r = member_client.put(url, data=os.urandom(MiB), content_type="application/octet-stream")
    assert r.status_code == 200 and r.json()["received"] == [[0, MiB]]


def test_unfinished_uploads_and_orphaned_staging_files_expire(member, synced, settings):
    pool, _ = synced
    settings.UPLOAD_EXPIRE_HOURS = 24
    old = timezone.now() - timedelta(hours=25)
    abandoned = _upload(pool, member, "abandoned.img")
    failed = _upload(pool, member, "failed.img", state=Upload.State.FAILED)
    recent = _upload(pool, member, "recent.img")
    running_job = Job.objects.create(kind="upload", host=pool.host, pool=pool, state=Job.State.RUNNING)
    streaming = _upload(pool, member, "streaming.img", mode=Upload.Mode.NEW, job=running_job)
    Upload.objects.filter(pk__in=[abandoned.pk, failed.pk, streaming.pk]).update(updated_at=old)
    orphan = abandoned.staging_path.parent / "0f0f0f0f-0000-4000-8000-000000000000.part"
    orphan.write_bytes(b"x")
    os.utime(orphan, (time.time() - 26 * 3600,) * 2)
    young_orphan = abandoned.staging_path.parent / "0f0f0f0f-0000-4000-8000-000000000001.part"
    young_orphan.write_bytes(b"x")

    assert expire_uploads() == 3
    assert set(Upload.objects.values_list("volume_name", flat=True)) == {"recent.img", "streaming.img"}
    assert not abandoned.staging_path.exists() and not failed.staging_path.exists() and not orphan.exists()
    assert recent.staging_path.exists() and streaming.staging_path.exists() and young_orphan.exists()
