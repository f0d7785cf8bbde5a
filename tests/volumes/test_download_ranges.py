"""A download resumes: a single Range is honoured (206, Content-Range) both ways the app reads a volume, the
ETag changes when the volume's bytes do, and an If-Range with an old ETag gets the whole volume; a range past
the end is a 416. Real libvirtd, the ASGI server over HTTP."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import virsh, wait_for_job
from volumes.download_view import Unsatisfiable, byte_range
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


def _file_bytes(scratch, name: str, start: int, stop: int) -> bytes:
    with open(scratch.path / name, "rb") as f:
        f.seek(start)
        return f.read(stop - start)


def test_a_download_resumes_from_where_it_stopped(api, synced, io_path):
    from jobs.models import Job

    pool, scratch = synced
    name = "ranged.img"
    scratch.create_volume(name, "8M", "raw")
    with open(scratch.path / name, "r+b") as f:  # data, a hole, data
        f.write(hashlib.sha256(b"a").digest() * 40000)
        f.seek(6 * MiB)
        f.write(b"\x7f" * MiB)
    from inventory.sync import sync_host

    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    volume = Volume.objects.get(pool=pool, name=name)
    url = f"/volumes/{volume.pk}/download"
    whole = api.http.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes", whole.headers
    etag = whole.headers["etag"]
    assert whole.content == _file_bytes(scratch, name, 0, 8 * MiB)

    start = 3 * MiB + 12345  # resumed in the hole, up to data
    part = api.http.get(url, headers={"Range": f"bytes={start}-", "If-Range": etag})
    assert part.status_code == 206, part.text[:300]
    assert part.headers["content-range"] == f"bytes {start}-{8 * MiB - 1}/{8 * MiB}"
    assert int(part.headers["content-length"]) == 8 * MiB - start
    assert whole.content[:start] + part.content == whole.content
    middle = api.http.get(url, headers={"Range": "bytes=1000-1999"})
    assert middle.status_code == 206 and middle.content == whole.content[1000:2000]
    job = wait_for_job(Job.objects.filter(kind="download").order_by("-pk").first().pk, timeout=30)
    assert job.state == "succeeded" and "Sending bytes 1000 to 1999" in job.log, job.log

    assert api.http.get(url, headers={"Range": f"bytes={8 * MiB}-"}).status_code == 416
    # The volume changes: its ETag does, and a resume with the old one gets the whole new volume
    virsh("vol-wipe", "--pool", scratch.name, name)
    changed = api.http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.content == bytes(8 * MiB)


def test_the_framed_format_sends_the_whole_volume_and_offers_no_ranges(api, synced):
    pool, _scratch = synced
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    framed = api.http.get(f"/volumes/{volume.pk}/download", params={"format": "sparse"},
                          headers={"Range": "bytes=0-9"})
    assert framed.status_code == 200 and "accept-ranges" not in framed.headers and "etag" not in framed.headers
