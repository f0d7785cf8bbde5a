"""A download resumes: a single Range is honoured (206, Content-Range) both ways the app reads a volume, the
ETag changes when the volume's bytes do, and an If-Range with an old ETag gets the whole volume; a range past
the end is a 416. Real libvirtd, the ASGI server over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import assert_moved_by, virsh, wait_for_job
from volumes.download_reader import Unsatisfiable, byte_range
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def test_the_range_header_is_read_as_rfc_9110_says():
    assert byte_range("bytes=0-499", 1000) == (0, 500)
    assert byte_range("bytes=500-", 1000) == (500, 1000)
    assert byte_range("bytes=-100", 1000) == (900, 1000)
    assert byte_range("bytes=-5000", 1000) == (0, 1000)
    assert byte_range("bytes=900-5000", 1000) == (900, 1000)  # a last byte past the end: to the end
    for ignored in ("items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=-", "0-1"):
        assert byte_range(ignored, 1000) is None, ignored  # may be ignored: the whole volume
    for past in ("bytes=1000-", "bytes=2000-3000", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            byte_range(past, 1000)


def write_ranged_volume(scratch, name: str) -> Path:
    """An 8 MiB raw volume of data, a hole, then data, in the scratch pool; its file."""
    scratch.create_volume(name, "8M", "raw")
    path = scratch.path / name
    with open(path, "r+b") as f:
        f.write(hashlib.sha256(b"a").digest() * 40000)
        f.seek(6 * MiB)
        f.write(b"\x7f" * MiB)
    virsh("pool-refresh", scratch.name)
    return path


def assert_a_download_resumes(http, url: str, path: Path, change: Callable[[], None]):
    """The download at url of the volume whose file is path: whole with an ETag, then resumed in its hole, a middle
    range (the job's log names it), a range past the end (416), and after change() rewrites the volume (zeros) a
    resume with the old ETag gets the whole new volume. Returns the middle range's job."""
    from jobs.models import Job

    whole = http.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes", whole.headers
    etag = whole.headers["etag"]
    assert whole.content == path.read_bytes()

    start = 3 * MiB + 12345  # resumed in the hole, up to data
    part = http.get(url, headers={"Range": f"bytes={start}-", "If-Range": etag})
    assert part.status_code == 206, part.text[:300]
    assert part.headers["content-range"] == f"bytes {start}-{8 * MiB - 1}/{8 * MiB}"
    assert int(part.headers["content-length"]) == 8 * MiB - start
    assert whole.content[:start] + part.content == whole.content
    middle = http.get(url, headers={"Range": "bytes=1000-1999"})
    assert middle.status_code == 206 and middle.content == whole.content[1000:2000]
    job = wait_for_job(int(middle.headers["x-job-id"]), timeout=30)
    assert job.state == Job.State.SUCCEEDED and "Sending bytes 1000 to 1999" in job.log, job.log

    past = http.get(url, headers={"Range": f"bytes={8 * MiB}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{8 * MiB}", past.headers
    change()
    changed = http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.content == bytes(8 * MiB)
    return job


def test_a_download_resumes_from_where_it_stopped(api, synced, io_path):
    from inventory.sync import sync_host

    pool, scratch = synced
    path = write_ranged_volume(scratch, "ranged.img")
    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    volume = Volume.objects.get(pool=pool, name="ranged.img")
    job = assert_a_download_resumes(api.http, f"/volumes/{volume.pk}/download", path,
                                    lambda: virsh("vol-wipe", "--pool", scratch.name, "ranged.img"))
    assert_moved_by(job, io_path)


def test_the_framed_format_sends_the_whole_volume_and_offers_no_ranges(api, synced):
    pool, _scratch = synced
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    framed = api.http.get(f"/volumes/{volume.pk}/download", params={"format": "sparse"},
                          headers={"Range": "bytes=0-9"})
    assert framed.status_code == 200 and "accept-ranges" not in framed.headers and "etag" not in framed.headers
