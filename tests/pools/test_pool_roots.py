"""Pool directories stay inside POOL_ROOTS: symlinks followed, system directories refused whatever the roots.

The path check is pure and tested on real directories and symlinks; the define forms (per type and
pasted XML) are driven as an admin through the Django test client against the real libvirtd, with
`virsh pool-list` as the witness that nothing was defined.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pools.models import StoragePool
from tests.conftest import ROOT, TEST_POOL_PREFIX, virsh
from virtstorage.virt import pools as vpools

POOL_PREFIX = f"{TEST_POOL_PREFIX}{os.getpid()}-"


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """A root with a subdirectory, symlinks that stay inside, and symlinks that escape."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "vms").mkdir(parents=True)
    outside.mkdir()
    (root / "to-etc").symlink_to("/etc")
    (root / "to-outside").symlink_to(outside)
    (root / "chain-a").symlink_to(root / "chain-b")  # chain-a -> chain-b -> chain-c -> /etc/cron.d
    (root / "chain-b").symlink_to(root / "chain-c")
    (root / "chain-c").symlink_to("/etc/cron.d")
    (root / "inner-a").symlink_to("inner-b")  # a relative chain that stays inside: inner-a -> inner-b -> vms
    (root / "inner-b").symlink_to(root / "vms")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    (root / "dangling").symlink_to(f"/etc/{TEST_POOL_PREFIX}does-not-exist")
    (root / "file.img").write_bytes(b"x")
    link_root = tmp_path / "link-root"  # a root that is itself a symlink
    link_root.symlink_to(root)
    return {"root": root, "outside": outside, "link_root": link_root, "tmp": tmp_path}


def refused(path: str, roots: list[str], match: str) -> str:
    with pytest.raises(ValueError) as exc:
        vpools.check_pool_target(path, roots)
    assert match in str(exc.value), str(exc.value)
    return str(exc.value)


# -- the pure check ------------------------------------------------------------------------------

def test_the_root_itself_and_what_is_under_it_pass(tree):
    root = str(tree["root"])
    assert vpools.check_pool_target(root, [root]) == root
    assert vpools.check_pool_target(f"{root}/vms", [root]) == f"{root}/vms"


def test_a_dir_that_does_not_exist_yet_passes_under_a_root(tree):
    root = str(tree["root"])
    assert vpools.check_pool_target(f"{root}/new/deeper", [root]) == f"{root}/new/deeper"


def test_a_path_outside_every_root_is_refused_with_the_roots_named(tree):
    root, other = str(tree["root"]), "/var/lib/libvirt/images"
    message = refused(f"{tree['outside']}/vms", [root, other], "is outside the pool roots")
    assert f"Pool directories must be under {root} or {other} (POOL_ROOTS)." in message
    refused(f"{tree['tmp']}", [root], "outside")  # the parent of a root is not in it
    refused(f"{root}-sibling/x", [root], "outside")  # a prefix of the name is not a parent


def test_a_symlink_inside_a_root_that_points_to_etc_is_refused(tree):
    root = str(tree["root"])
    message = refused(f"{root}/to-etc", [root], "(through a symbolic link), which is the system directory /etc")
    assert "leads to /etc" in message and "(POOL_ROOTS)" in message
    refused(f"{root}/to-etc/cron.d", [root], "inside the system directory /etc")


def test_a_symlink_chain_is_followed_to_its_end(tree):
    root = str(tree["root"])
    refused(f"{root}/chain-a", [root], "leads to /etc/cron.d")
    refused(f"{root}/chain-a/new", [root], "inside the system directory /etc")
    # A chain that stays inside the root passes, as the directory it leads to.
    assert vpools.check_pool_target(f"{root}/inner-a", [root]) == f"{root}/vms"


def test_a_dir_that_does_not_exist_yet_under_an_escaping_symlink_is_refused(tree):
    root = str(tree["root"])
    message = refused(f"{root}/to-outside/new/deeper", [root], "is outside the pool roots")
    assert f"leads to {tree['outside']}/new/deeper" in message
    refused(f"{root}/to-etc/{TEST_POOL_PREFIX}new", [root], "inside the system directory /etc")


def test_loops_dangling_links_and_files_are_refused(tree):
    root = str(tree["root"])
    refused(f"{root}/loop-a/x", [root], "loop of symbolic links")
    refused(f"{root}/dangling", [root], "does not exist")
    refused(f"{root}/dangling/x", [root], "does not exist")
    refused(f"{root}/file.img", [root], "is a file")
    refused(f"{root}/file.img/x", [root], "file")


@pytest.mark.parametrize("path,match", [
    ("{root}/../outside", "'..'"),
    ("{root}/vms/../vms", "'..'"),
    ("..", "absolute"),
    ("vms", "absolute"),
    ("./vms", "absolute"),
    ("", "Enter the pool directory"),
    ("{root}/a\x00b", "control characters"),
    ("{root}/a\nb", "control characters"),
    ("{root}/a\tb", "control characters"),
    ("{root}/a\x7fb", "control characters"),
])
def test_relative_dotdot_and_control_characters_are_refused(tree, path, match):
    refused(path.format(root=tree["root"]), [str(tree["root"])], match)


@pytest.mark.parametrize("path,system", [
    ("/var/spool/cron/crontabs", "/var/spool"),
    ("/var/spool/cron/crontabs/new", "/var/spool"),
    ("/var/log", "/var/log"),
    ("/var/log/libvirt", "/var/log"),
    ("/var/lib/dpkg", "/var/lib/dpkg"),
    ("/var/lib/dpkg/info", "/var/lib/dpkg"),
    ("/var/lib/apt/lists", "/var/lib/apt"),
    ("/var/cache/apt", "/var/cache"),
    ("/etc", "/etc"),
    ("/etc/cron.d", "/etc"),
    ("/usr/local/pools", "/usr"),
    ("/root/pools", "/root"),
    ("/boot/x", "/boot"),
    ("/dev/shm/x", "/dev"),
    ("/proc/self", "/proc"),
    ("/run/x", "/run"),
])
def test_system_directories_are_refused_even_when_a_root_is_misconfigured(path, system):
    """A root of / (or the system directory itself) lets nothing in /etc, /var/spool... through."""
    for roots in (["/"], [system], ["/var/lib/libvirt/images", "/"]):
        refused(path, roots, f"system directory {system}")


@pytest.mark.parametrize("path", ["/", "/var", "/var/lib", "/var/lib/libvirt", "/home", "/tmp", "/var/tmp", "/srv"])
def test_system_directories_are_never_a_pool_themselves(path):
    refused(path, ["/"], f"is the system directory {path}")
    refused(path, [path], f"is the system directory {path}")


def test_a_root_of_slash_still_allows_an_ordinary_directory(tree):
    assert vpools.check_pool_target(f"{tree['root']}/vms", ["/"]) == f"{tree['root']}/vms"


def test_hidden_directories_are_refused_below_a_root(tree):
    root = str(tree["root"])
    refused(f"{root}/.ssh", [root], "hidden directory .ssh")
    refused(f"{root}/vms/.config/autostart", ["/"], "hidden directory .config")


def test_the_temp_dir_is_a_root_only_when_configured_and_never_a_pool_itself():
    refused("/tmp/vstest-x", ["/var/lib/libvirt/images"], "outside the pool roots")
    assert vpools.check_pool_target("/tmp/vstest-x", ["/tmp"]) == "/tmp/vstest-x"
    refused("/tmp", ["/tmp"], "is the system directory /tmp")


def test_trailing_slashes_in_paths_and_roots(tree):
    root = str(tree["root"])
    assert vpools.check_pool_target(f"{root}/vms/", [f"{root}/"]) == f"{root}/vms"
    assert vpools.check_pool_target(f"{root}//vms", [f"{root}//"]) == f"{root}/vms"
    assert vpools.check_pool_target(f"{root}/", [root]) == root
    refused("/etc/", ["/"], "system directory /etc")


def test_roots_are_compared_resolved(tree):
    """A root that is a symlink holds what lies in its real directory, by either name."""
    root, link_root = str(tree["root"]), str(tree["link_root"])
    assert vpools.check_pool_target(f"{link_root}/vms", [link_root]) == f"{root}/vms"
    assert vpools.check_pool_target(f"{root}/vms", [link_root]) == f"{root}/vms"
    refused(f"{link_root}/to-etc", [link_root], "system directory /etc")


def test_no_usable_root_refuses_everything(tree):
    refused(f"{tree['root']}/vms", [], "No pool roots are configured")
    refused(f"{tree['root']}/vms", ["relative/root"], "No pool roots are configured")


def test_device_directories_of_device_pools():
    assert vpools.validate_device_dir("/dev") == "/dev"
    assert vpools.validate_device_dir("/dev/disk/by-path") == "/dev/disk/by-path"
    for bad in ("/etc", "/srv/x", "/devices", "dev/x"):
        with pytest.raises(ValueError):
            vpools.validate_device_dir(bad)


@pytest.mark.parametrize("name", [" vms", "vms ", " vms ", "vms\t", "\nvms"])
def test_pool_names_with_surrounding_space_are_refused_not_stripped(name):
    with pytest.raises(ValueError, match="may not start or end with a space"):
        vpools.validate_pool_name(name)


# -- the setting -----------------------------------------------------------------------------------

def _settings_roots(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "POOL_ROOTS"}
    if value is not None:
        env["POOL_ROOTS"] = value
    code = "from django.conf import settings; print(repr(settings.POOL_ROOTS))"
    return subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_pool_roots_setting_defaults_and_parsing():
    from django.conf import settings

    default = _settings_roots(None)
    assert default.returncode == 0, default.stderr
    var_pools = os.path.abspath(Path(settings.VAR_DIR) / "pools")
    assert default.stdout.strip().splitlines()[-1] == repr(["/var/lib/libvirt/images", var_pools])
    both = _settings_roots("/srv/pools/:/data/vms,/mnt/big")
    assert both.stdout.strip().splitlines()[-1] == repr(["/srv/pools", "/data/vms", "/mnt/big"]), both.stderr
    relative = _settings_roots("/srv/pools:pools")
    assert relative.returncode != 0 and "POOL_ROOTS takes absolute paths" in relative.stderr


def test_the_demo_pool_of_bootstrap_lies_in_the_default_roots():
    from django.conf import settings

    assert vpools.check_pool_target(settings.DEMO_POOL_DIR, settings.DEFAULT_POOL_ROOTS) == settings.DEMO_POOL_DIR


# -- the define forms against the real libvirtd ----------------------------------------------------

def _own_pools() -> set[str]:
    """This run's pools in libvirt: other runs define and remove theirs side by side."""
    return {n for n in virsh("pool-list", "--all", "--name").split() if n.startswith(POOL_PREFIX)}


def _forget(name: str) -> None:
    virsh("pool-destroy", name, check=False)
    virsh("pool-undefine", name, check=False)


def _body(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def roots(settings, tree) -> dict[str, Path]:
    """The test's root is the only pool root (read on every check, so the `settings` fixture is enough)."""
    settings.POOL_ROOTS = [str(tree["root"])]
    return tree


BAD_PATHS = [
    ("{root}/to-etc", "is the system directory /etc"),
    ("{root}/to-etc/{name}", "inside the system directory /etc"),
    ("{root}/chain-a", "inside the system directory /etc"),
    ("{root}/to-outside/{name}", "is outside the pool roots"),
    ("{outside}/{name}", "is outside the pool roots"),
    ("/var/spool/cron/crontabs", "system directory /var/spool"),
    ("/var/log/{name}", "system directory /var/log"),
    ("/var/lib/dpkg/{name}", "system directory /var/lib/dpkg"),
    ("/etc/{name}", "system directory /etc"),
    ("{root}/../outside", "may not contain"),
    ("relative/{name}", "must be absolute"),
]

FORM_FIELDS = {
    "dir": {},
    "fs": {"source_device": "/dev/vdb1", "source_format": "ext4"},
    "netfs": {"source_host": "nfs.example.com", "source_format": "nfs", "source_dir": "/export/vms"},
}


def _pool_xml(pool_type: str, name: str, path: str) -> str:
    source = {"dir": "", "fs": "<source><device path='/dev/vdb1'/><format type='ext4'/></source>",
              "netfs": "<source><host name='nfs.example.com'/><dir path='/export/vms'/><format type='nfs'/></source>"}
    return f"<pool type='{pool_type}'><name>{name}</name>{source[pool_type]}<target><path>{path}</path></target></pool>"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool_type", list(FORM_FIELDS))
@pytest.mark.parametrize("path,message", BAD_PATHS, ids=[p for p, _ in BAD_PATHS])
def test_the_define_forms_refuse_paths_outside_the_roots(admin_client, local_host, roots, pool_type, path, message):
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    target = path.format(root=roots["root"], outside=roots["outside"], name=name)
    before = _own_pools()
    url = f"/pools/define/on/{local_host.pk}/"
    try:
        form = admin_client.post(f"{url}?type={pool_type}", {"type": pool_type, "name": name, "target_path": target,
                                                             **FORM_FIELDS[pool_type], "action": "define"})
        pasted = admin_client.post(f"{url}?type=xml", {"type": "xml", "xml": _pool_xml(pool_type, name, target),
                                                       "action": "define"})
        for response in (form, pasted):
            body = _body(response)
            assert response.status_code == 200 and message in body, body[body.find("errorlist") - 200:][:1500]
            assert "pool-xml-preview" not in body
            assert f"Pool directories must be under {roots['root']} (POOL_ROOTS)." in body
        assert _own_pools() == before and name not in virsh("pool-list", "--all", "--name").split()
        assert not StoragePool.objects.filter(host=local_host, name=name).exists()
    finally:
        _forget(name)


@pytest.mark.django_db(transaction=True)
def test_a_path_under_a_root_still_defines(admin_client, local_host, roots, celery_worker):
    from jobs.models import Job
    from tests.conftest import wait_for_job

    url = f"/pools/define/on/{local_host.pk}/"
    names = [f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        form = admin_client.post(f"{url}?type=dir", {"type": "dir", "name": names[0],
                                                     "target_path": f"{roots['root']}/vms", "action": "define"})
        assert form.status_code == 302, _body(form)[:3000]
        # Through a symlink that stays inside the root, and a directory that does not exist yet.
        target = f"{roots['root']}/inner-a/new"
        pasted = admin_client.post(f"{url}?type=xml", {"type": "xml", "xml": _pool_xml("dir", names[1], target),
                                                       "action": "define"})
        assert pasted.status_code == 302, _body(pasted)[:3000]
        for name in names:  # the define jobs
            job = wait_for_job(Job.objects.get(kind="pool-define", pool_name=name).pk, timeout=60)
            assert job.state == Job.State.SUCCEEDED, job.error
        listed = virsh("pool-list", "--all", "--name").split()
        assert names[0] in listed and names[1] in listed
        assert f"<path>{roots['root']}/vms</path>" in virsh("pool-dumpxml", names[0])
        # fs and netfs mount points under the root pass the check too (the preview is shown).
        for pool_type in ("fs", "netfs"):
            preview = admin_client.post(f"{url}?type={pool_type}", {
                "type": pool_type, "name": f"{POOL_PREFIX}x", "target_path": f"{roots['root']}/{pool_type}",
                **FORM_FIELDS[pool_type], "action": "preview"})
            assert b"pool-xml-preview" in preview.content, _body(preview)[:3000]
    finally:
        for name in names:
            _forget(name)


@pytest.mark.django_db(transaction=True)
def test_the_form_names_the_roots_in_its_help(admin_client, local_host, roots):
    body = _body(admin_client.get(f"/pools/define/on/{local_host.pk}/?type=dir"))
    assert f"Must be under {roots['root']} (POOL_ROOTS)." in body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("xml,message", [
    # A type libvirt knows but the app does not: its paths would go unchecked.
    ("<pool type='scsi'><name>{name}</name><source><adapter name='host0'/></source>"
     "<target><path>/etc</path></target></pool>", "virtstorage does not know pool type 'scsi'"),
    ("<pool type='vstorage'><name>{name}</name><source><name>c</name></source>"
     "<target><path>/etc</path></target></pool>", "does not know pool type 'vstorage'"),
    # A device pool's target is a device directory, never an ordinary one.
    ("<pool type='logical'><name>{name}</name><source><name>vg</name></source>"
     "<target><path>/etc/cron.d</path></target></pool>", "is not a device directory"),
    ("<pool type='disk'><name>{name}</name><source><device path='/dev/vde'/></source>"
     "<target><path>/var/spool/cron/crontabs</path></target></pool>", "is not a device directory"),
    # Paths and names are checked as libvirt reads them: not stripped.
    ("<pool type='dir'><name>{name}</name><target><path> /etc</path></target></pool>", "not allowed: ' '"),
    ("<pool type='dir'><name> {name}</name><target><path>{root}/vms</path></target></pool>",
     "may not start or end with a space"),
    ("<pool type='dir'><name>{name}</name><target><path>{root}/vms</path></target>"
     "<target><path>/etc</path></target></pool>", "one <target>"),
])
def test_pasted_xml_of_other_types_and_shapes_is_refused(admin_client, local_host, roots, xml, message):
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    before = _own_pools()
    try:
        response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=xml", {
            "type": "xml", "xml": xml.format(name=name, root=roots["root"]), "action": "define"})
        body = _body(response)
        assert response.status_code == 200 and message in body, body[body.find("errorlist") - 200:][:1500]
        assert _own_pools() == before
    finally:
        _forget(name)
        _forget(f" {name}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", [" {name}", "{name} ", " {name} ", "{name}\t"])
def test_pool_names_with_leading_or_trailing_space_are_refused(admin_client, local_host, roots, name):
    plain = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    before = _own_pools()
    response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=dir", {
        "type": "dir", "name": name.format(name=plain), "target_path": f"{roots['root']}/vms", "action": "define"})
    body = _body(response)
    assert response.status_code == 200 and "may not start or end with a space" in body, body[:3000]
    assert _own_pools() == before and not StoragePool.objects.filter(host=local_host).exists()


@pytest.mark.django_db(transaction=True)
def test_a_pool_may_not_hold_or_lie_inside_another(admin_client, local_host, roots):
    """Nested pools see each other's files (one's delete or wipe reaches the other's): refused both ways, by form
    and by pasted XML; a sibling whose name merely starts the same is fine."""
    StoragePool.objects.create(host=local_host, name="vms", target_path=f"{roots['root']}/vms", state="active")
    url = f"/pools/define/on/{local_host.pk}/"
    for path in (str(roots["root"]), f"{roots['root']}/vms/inner"):
        form = admin_client.post(f"{url}?type=dir", {"type": "dir", "name": f"{POOL_PREFIX}n", "target_path": path,
                                                     "action": "preview"})
        assert "nested pools see each other's files" in _body(form) and b"pool-xml-preview" not in form.content
        pasted = admin_client.post(f"{url}?type=xml", {"type": "xml", "xml": _pool_xml("dir", f"{POOL_PREFIX}n", path),
                                                       "action": "preview"})
        assert "nested pools see each other's files" in _body(pasted), path
    sibling = admin_client.post(f"{url}?type=dir", {"type": "dir", "name": f"{POOL_PREFIX}n",
                                                    "target_path": f"{roots['root']}/vms2", "action": "preview"})
    assert b"pool-xml-preview" in sibling.content, _body(sibling)[:3000]
