"""Uploads and downloads with an API token, through the real ASGI server (whose chunk bodies bypass Django's
spool, volumes/asgi_upload.py): the API opens the upload, the chunk protocol carries it, the command-line
client does both with $VIRTSTORAGE_TOKEN; a revoked token moves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accounts import tokens
from tests.api.conftest import token_for
from tests.conftest import virsh
from tests.volumes.test_upload_download import disk_usage_bytes, make_sparse_file, sha256_file
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024 * 1024
CLIENT = Path(__file__).resolve().parents[2] / "scripts" / "vstransfer.py"


def vstransfer(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VIRTSTORAGE_PASSWORD"} | {"VIRTSTORAGE_TOKEN": token}
    return subprocess.run([sys.executable, str(CLIENT), "--url", url, *args], env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_the_api_opens_an_upload_and_the_chunk_protocol_carries_it(asgi_server, synced, celery_worker, member,
                                                                   tmp_path):
    pool, scratch = synced
    src = make_sparse_file(tmp_path / "img", 24 * MiB, [(0, 2 * MiB), (20 * MiB, 4 * MiB)])
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token_for(member)}"},
                      timeout=60) as client:
        opened = client.post("/api/uploads/", json={"pool": pool.pk, "volume": "by-token.img", "mode": "new",
                                                    "size": 24 * MiB})
        assert opened.status_code == 201, opened.text
        upload = opened.json()
        assert upload["streaming"] and upload["job"] and upload["missing"] == [[0, 24 * MiB]]
        data = src.read_bytes()
        for lo, hi in [(0, 2 * MiB), (20 * MiB, 24 * MiB)]:
            sent = client.put(upload["chunks_url"], content=data[lo:hi],
                              headers={"Content-Range": f"bytes {lo}-{hi - 1}/{24 * MiB}"})
            assert sent.status_code == 200, sent.text
        assert client.post(upload["holes_url"], json={"holes": [[2 * MiB, 18 * MiB]]}).status_code == 200
        assert client.get(f"/api/uploads/{upload['id']}/").json()["missing"] == []
        completed = client.post(upload["complete_url"])
        assert completed.status_code == 202, completed.text
        job = client.get(f"/api/jobs/{upload['job']}/")
        while job.json()["state"] in ("queued", "running"):
            job = client.get(f"/api/jobs/{upload['job']}/")
        assert job.json()["state"] == "succeeded", job.json()["error"]
    assert sha256_file(scratch.path / "by-token.img") == sha256_file(src)
    assert disk_usage_bytes(scratch.path / "by-token.img") < 12 * MiB


def test_vstransfer_uploads_and_downloads_with_a_token(asgi_server, synced, celery_worker, member, tmp_path):
    pool, scratch = synced
    raw = token_for(member)
    src = make_sparse_file(tmp_path / "img", 40 * MiB, [(0, 3 * MiB), (30 * MiB + 5, 2 * MiB)])
    up = vstransfer(asgi_server.url, raw, "upload", str(src), "--pool", str(pool.pk), "--volume", "cli-token.img")
    assert up.returncode == 0, up.stderr
    assert sha256_file(scratch.path / "cli-token.img") == sha256_file(src)
    assert Upload.objects.get(volume_name="cli-token.img").created_by == member
    from inventory.sync import sync_host

    sync_host(pool.host, pool_names=[pool.name])
    volume = pool.volumes.get(name="cli-token.img")
    out = tmp_path / "back.img"
    down = vstransfer(asgi_server.url, raw, "download", str(volume.pk), str(out), "--sparse")
    assert down.returncode == 0, down.stderr
    assert sha256_file(out) == sha256_file(src) and disk_usage_bytes(out) < 12 * MiB


def test_a_revoked_token_moves_nothing(asgi_server, synced, celery_worker, member, tmp_path):
    pool, scratch = synced
    token, raw = tokens.issue(member, "revoked")
    tokens.revoke(token)
    src = make_sparse_file(tmp_path / "img", MiB, [(0, MiB)])
    up = vstransfer(asgi_server.url, raw, "upload", str(src), "--pool", str(pool.pk), "--volume", "never.img")
    assert up.returncode == 1 and "revoked" in up.stderr
    volume = pool.volumes.get(name="raw-thin.img")
    down = vstransfer(asgi_server.url, raw, "download", str(volume.pk), str(tmp_path / "out"))
    assert down.returncode == 1 and not (tmp_path / "out").exists()
    direct = httpx.get(f"{asgi_server.url}/volumes/{volume.pk}/download", headers={"Authorization": f"Bearer {raw}"})
    assert direct.status_code == 401
    assert not Upload.objects.exists() and "never.img" not in virsh("vol-list", scratch.name)
