"""Every lifecycle step of a `dir` pool, end to end: browser requests -> jobs on a real worker -> libvirtd.

Witnesses are independent of the app: `virsh pool-info`/`pool-dumpxml`/`pool-list`
and the file system.
"""

from __future__ import annotations

import hashlib
import html
import os
import shutil
import uuid
from pathlib import Path

import pytest

from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import LIBVIRT_URI, TEST_POOL_PREFIX, virsh, wait_for_job
from virtstorage.virt import open_host
from virtstorage.virt import pools as vpools

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
# conftest's sweep removes such pools left behind by a killed run, and spares those of live runs.
POOL_PREFIX = f"{TEST_POOL_PREFIX}{os.getpid()}-"


def _pool_info(name: str) -> dict[str, str]:
    out = virsh("pool-info", "--bytes", name)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def _defined(name: str) -> bool:
    return name in virsh("pool-list", "--all", "--name").split()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_job(name: str, kind: str) -> Job:
    return Job.objects.filter(pool_name=name, kind=kind).latest("pk")


def _finished(name: str, kind: str) -> Job:
    job = wait_for_job(_last_job(name, kind).pk, timeout=60)
    assert job.state == Job.State.SUCCEEDED, f"{kind}: {job.error}\n{job.log}"
    return job


@pytest.fixture
def pool_dir(tmp_path_factory):
    """A directory for a pool the test defines itself; the pool is forgotten afterwards."""
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("lifecycle")
    yield name, base / name
    if _defined(name):
        for line in virsh("vol-list", name, check=False).splitlines():
            if line.split():
                virsh("vol-delete", "--pool", name, line.split()[0], check=False)
        virsh("pool-destroy", name, check=False)
        virsh("pool-undefine", name, check=False)
    shutil.rmtree(base, ignore_errors=True)


def _define_and_start(client, host, name: str, path: Path) -> StoragePool:
    url = f"/pools/define/on/{host.pk}/?type=dir"
    preview = client.post(url, {"type": "dir", "name": name, "target_path": str(path), "action": "preview"})
    assert preview.status_code == 200 and b"pool-xml-preview" in preview.content
    response = client.post(url, {"type": "dir", "name": name, "target_path": str(path), "start_now": "on",
                                 "action": "define"})
    assert response.status_code == 302, response.content.decode()[:2000]
    define = _finished(name, "pool-define")  # the page went to the define job's page
    assert response["Location"] == define.get_absolute_url()
    pool = StoragePool.objects.get(host=host, name=name)
    assert define.pool_id == pool.pk and f"job #{_last_job(name, 'pool-start').pk}" in define.result
    _finished(name, "pool-start")  # launched by the define job ("start now")
    return pool


def _act(client, pool: StoragePool, action: str, kind: str) -> Job:
    response = client.post(f"/pools/{pool.pk}/do/{action}/", **HTMX)
    assert response.status_code == 200
    job = _last_job(pool.name, kind)
    assert f"job-{job.pk}-progress" in response.content.decode()  # the card shows the job's live progress
    return _finished(pool.name, kind)


def test_dir_pool_lifecycle_end_to_end(admin_client, local_host, celery_worker, pool_dir):
    name, path = pool_dir
    pool = _define_and_start(admin_client, local_host, name, path)
    assert path.is_dir()
    assert _pool_info(name)["State"] == "running"
    dumped = virsh("pool-dumpxml", name)
    assert f"<path>{path}</path>" in dumped and "type='dir'" in dumped

    # Volumes with real data, made behind the app's back; refresh finds them.
    virsh("vol-create-as", name, "a.img", "4M", "--format", "raw")
    virsh("vol-create-as", name, "b.img", "2M", "--format", "raw")
    (path / "a.img").write_bytes(os.urandom(4 * 1024**2))
    (path / "b.img").write_bytes(os.urandom(2 * 1024**2))
    hashes = {n: _sha(path / n) for n in ("a.img", "b.img")}
    _act(admin_client, pool, "refresh", "pool-refresh")
    pool.refresh_from_db()
    assert pool.volume_count == 2 and pool.volume_capacity_total == 6 * 1024**2

    # Stop keeps every byte; start brings the volumes back.
    _act(admin_client, pool, "stop", "pool-stop")
    assert _pool_info(name)["State"] == "inactive"
    pool.refresh_from_db()
    assert not pool.is_active and pool.volume_count == 2
    assert {n: _sha(path / n) for n in hashes} == hashes
    # Build (of a stopped pool): a directory has nothing to format, so nothing to overwrite; data stays.
    assert "nothing to format" in admin_client.get(f"/pools/{pool.pk}/build/").content.decode()
    response = admin_client.post(f"/pools/{pool.pk}/build/", {})
    assert response.status_code == 302
    _finished(name, "pool-build")
    assert {n: _sha(path / n) for n in hashes} == hashes
    _act(admin_client, pool, "start", "pool-start")
    assert _pool_info(name)["State"] == "running"
    assert sorted(line.split()[0] for line in virsh("vol-list", name).splitlines() if line.split()) == ["a.img",
                                                                                                       "b.img"]
    assert {n: _sha(path / n) for n in hashes} == hashes

    # Autostart on and off.
    _act(admin_client, pool, "autostart-on", "pool-autostart")
    assert _pool_info(name)["Autostart"] == "yes"
    pool.refresh_from_db()
    assert pool.autostart
    _act(admin_client, pool, "autostart-off", "pool-autostart")
    assert _pool_info(name)["Autostart"] == "no"

    page = admin_client.post(f"/pools/{pool.pk}/build/", {})
    assert "Stop it first" in page.content.decode()

    # Delete: refused without the name, refused while volumes exist unless confirmed.
    page = admin_client.post(f"/pools/{pool.pk}/delete/", {"confirm_name": "nope", "delete_volumes": "on"})
    assert page.status_code == 200 and f"Type {name} exactly" in page.content.decode()
    page = admin_client.post(f"/pools/{pool.pk}/delete/", {"confirm_name": name})
    assert page.status_code == 200 and "holds 2 volumes: tick this" in page.content.decode()
    assert not Job.objects.filter(pool_name=name, kind="pool-delete").exists()
    assert path.is_dir() and _defined(name)
    with open_host(LIBVIRT_URI) as lv, pytest.raises(vpools.PoolNotEmpty, match="2 volume"):
        vpools.delete_pool(lv, name, delete_volumes=False)  # the job checks libvirt itself, not the inventory
    assert (path / "a.img").exists()

    response = admin_client.post(f"/pools/{pool.pk}/delete/", {"confirm_name": name, "delete_volumes": "on"})
    assert response.status_code == 302
    job = _finished(name, "pool-delete")
    assert "2 volumes" in job.result
    assert not path.exists()
    assert not _defined(name)
    assert not StoragePool.objects.filter(host=local_host, name=name).exists()
    # The card of the gone pool sends the browser to the host page.
    card = admin_client.get(f"/pools/{pool.pk}/card/?job={job.pk}", **HTMX)
    assert card["HX-Redirect"] == local_host.get_absolute_url()


def test_undefine_forgets_the_pool_and_keeps_its_storage(admin_client, local_host, celery_worker, pool_dir):
    name, path = pool_dir
    pool = _define_and_start(admin_client, local_host, name, path)
    virsh("vol-create-as", name, "keep.img", "1M", "--format", "raw")
    (path / "keep.img").write_bytes(b"precious" * 1000)
    _act(admin_client, pool, "undefine", "pool-undefine")
    assert not _defined(name)
    assert (path / "keep.img").read_bytes() == b"precious" * 1000
    assert not StoragePool.objects.filter(host=local_host, name=name).exists()


def test_transient_pool_is_shown_as_such_and_cannot_be_undefined(admin_client, local_host, pool_dir):
    from inventory.sync import sync_host

    name, path = pool_dir
    path.mkdir(parents=True)
    virsh("pool-create-as", name, "dir", "--target", str(path))
    sync_host(local_host, pool_names=[name])
    pool = StoragePool.objects.get(host=local_host, name=name)
    assert not pool.persistent
    body = admin_client.get(pool.get_absolute_url()).content.decode()
    assert "transient" in body
    assert f"/pools/{pool.pk}/do/undefine/" not in body and f"/pools/{pool.pk}/delete/" not in body
    with open_host(LIBVIRT_URI) as lv, pytest.raises(vpools.InvalidRequest, match="transient"):
        vpools.undefine_pool(lv, name)


@pytest.mark.parametrize("name,path,message", [
    ("../evil", None, "not allowed: '/'"),
    ("a..b/c", None, "not allowed"),
    ("it's", None, "not allowed: \"'\""),
    ('say"hi"', None, "not allowed: '\"'"),
    ("<pool>", None, "not allowed"),
    ("a&b", None, "not allowed"),
    ("ok-name", "relative/dir", "must be absolute"),
    ("ok-name", "{base}/../etc", "may not contain"),
    ("ok-name", "/", "system directory"),
    ("ok-name", "/etc", "inside the system directory /etc"),
    ("ok-name", "/usr/local/pool", "inside the system directory /usr"),
    ("ok-name", "{base}/it's", "not allowed"),
    ("ok-name", "{base}/<x>", "not allowed"),
])
def test_bad_names_and_paths_get_form_errors(admin_client, local_host, tmp_path, name, path, message):
    target = (path or "{base}/pool").format(base=tmp_path)
    response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=dir",
                                 {"type": "dir", "name": name, "target_path": target, "action": "define"})
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert 'class="errorlist' in body and message in body, body[body.find("errorlist") - 200:][:800]
    assert "pool-xml-preview" not in body
    assert not StoragePool.objects.filter(host=local_host).exclude(name__startswith="vstest-").exists()


def test_duplicate_name_and_target_path_get_form_errors(admin_client, local_host, scratch_pool, tmp_path):
    from inventory.sync import sync_host

    sync_host(local_host, pool_names=[scratch_pool.name])
    url = f"/pools/define/on/{local_host.pk}/?type=dir"
    response = admin_client.post(url, {"type": "dir", "name": scratch_pool.name,
                                       "target_path": str(tmp_path / "other"), "action": "define"})
    assert f"already has a pool named {scratch_pool.name}" in response.content.decode()
    response = admin_client.post(url, {"type": "dir", "name": f"{POOL_PREFIX}dup",
                                       "target_path": str(scratch_pool.path), "action": "define"})
    assert f"Pool {scratch_pool.name} already uses {scratch_pool.path}" in response.content.decode()
    assert not _defined(f"{POOL_PREFIX}dup")


def test_build_with_overwrite_needs_the_name_typed():
    from pools.forms import BuildPoolForm

    pool = StoragePool(name="fsp", type="fs")
    assert not BuildPoolForm({"overwrite": "on", "confirm_name": "wrong"}, pool=pool).is_valid()
    assert BuildPoolForm({"overwrite": "on", "confirm_name": "fsp"}, pool=pool).is_valid()
    assert BuildPoolForm({}, pool=pool).is_valid()
    assert "overwrite" not in BuildPoolForm({}, pool=StoragePool(name="d", type="dir")).fields


def test_members_can_look_but_not_change(member_client, synced):
    pool, _scratch = synced
    page = member_client.get(pool.get_absolute_url())
    assert page.status_code == 200
    assert f"/pools/{pool.pk}/do/stop/" not in page.content.decode()
    assert member_client.post(f"/pools/{pool.pk}/do/stop/").status_code == 403
    assert member_client.get(f"/pools/define/on/{pool.host_id}/").status_code == 403
    assert member_client.post(f"/pools/{pool.pk}/policy/", {"max_overcommit": "9"}).status_code == 403
    assert member_client.get(f"/pools/{pool.pk}/libvirt/").status_code == 200
    assert not Job.objects.exists()


def test_live_view_shows_libvirts_numbers(admin_client, synced):
    pool, scratch = synced
    body = html.unescape(admin_client.get(f"/pools/{pool.pk}/libvirt/").content.decode())
    info = _pool_info(scratch.name)
    assert f'title="{int(info["Capacity"].split()[0]):,} bytes"' in body
    assert "<dd>running</dd>" in body and f"<path>{scratch.path}</path>" in body


def test_policy_form_saves_sizes_and_refuses_bad_input(admin_client, synced):
    pool, _scratch = synced
    response = admin_client.post(f"/pools/{pool.pk}/policy/", {"max_overcommit": "1.5", "reserve": "10M"}, **HTMX)
    assert response.status_code == 200
    pool.refresh_from_db()
    assert str(pool.max_overcommit) == "1.50" and pool.reserve_bytes == 10 * 1024**2
    assert 'value="10M"' in response.content.decode()
    response = admin_client.post(f"/pools/{pool.pk}/policy/", {"max_overcommit": "1.5", "reserve": "10 parsecs"},
                                 **HTMX)
    assert "Unknown unit" in response.content.decode()
    response = admin_client.post(f"/pools/{pool.pk}/policy/", {"max_overcommit": "0", "reserve": ""}, **HTMX)
    assert "below 0.1" in response.content.decode()
    pool.refresh_from_db()
    assert pool.reserve_bytes == 10 * 1024**2  # bad input changed nothing


def test_starting_a_pool_never_built_says_to_build_it(admin_client, local_host, celery_worker, pool_dir):
    """libvirt's own words ("cannot open directory …: No such file or directory"), then what to do about them."""
    name, path = pool_dir
    virsh("pool-define-as", name, "dir", "--target", str(path))  # defined, never built: no directory
    sync_host(local_host, pool_names=[name])
    pool = StoragePool.objects.get(host=local_host, name=name)
    admin_client.post(f"/pools/{pool.pk}/do/start/", **HTMX)
    job = wait_for_job(_last_job(name, "pool-start").pk, timeout=60)
    assert job.state == Job.State.FAILED and "No such file or directory" in job.error
    assert job.error.endswith("If the pool was never built, Build creates its storage first."), job.error
