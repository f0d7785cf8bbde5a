"""Pool XML per type: validated by libvirt's schema, defined on the real libvirtd, bad input refused.

Builders and validators are pure and tested directly; the define form is driven
through the Django test client against the real libvirtd (no worker needed:
defining only writes configuration).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET

import pytest

from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import LIBVIRT_URI, TEST_POOL_PREFIX, virsh, wait_for_job
from virtstorage.virt import VirtError, open_host
from virtstorage.virt import pools as vpools

SECRET = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
IQN = "iqn.2024-01.com.example:storage.vms"
INITIATOR = "iqn.2024-01.com.example:host1"

# Realistic inputs per type, as the define form posts them. Mount points lie in a pool root (conftest makes
# the temp dir one); defining creates nothing there.
_MOUNTS = f"{tempfile.gettempdir()}/{TEST_POOL_PREFIX}{os.getpid()}"
FORM_INPUTS: dict[str, dict[str, str]] = {
    "fs": {"source_device": "/dev/vdb1", "source_format": "ext4", "target_path": f"{_MOUNTS}-fs"},
    "netfs": {"source_host": "nfs.example.com", "source_format": "nfs", "source_dir": "/export/vms",
              "target_path": f"{_MOUNTS}-nfs"},
    "logical": {"source_name": "vstestvg", "source_devices": "/dev/vdc\n/dev/vdd"},
    "disk": {"source_device": "/dev/vde", "source_format": "gpt"},
    "iscsi": {"source_host": "192.0.2.10:3260", "target_iqn": IQN, "initiator_iqn": INITIATOR,
              "auth_username": "chapuser", "auth_secret_uuid": SECRET},
    "iscsi-direct": {"source_host": "192.0.2.10", "target_iqn": IQN, "initiator_iqn": INITIATOR},
    "rbd": {"source_name": "libvirt-pool", "source_hosts": "mon1.example.com:6789\nmon2.example.com\n192.0.2.3",
            "auth_username": "libvirt", "auth_secret_uuid": SECRET},
    "zfs": {"source_name": "tank", "source_device": "/dev/vdf"},
}

SPECS = [
    vpools.PoolSpec("p", "dir", target_path="/var/lib/libvirt/images/vms"),
    vpools.PoolSpec("p", "fs", target_path="/srv/fs", source_devices=("/dev/sdb1",), source_format="xfs"),
    vpools.PoolSpec("p", "fs", target_path="/srv/fs", source_devices=("/dev/disk/by-id/wwn-0x5000c5",)),
    vpools.PoolSpec("p", "netfs", target_path="/mnt/nfs/vms", source_hosts=("10.0.0.5",), source_dir="/export",
                    source_format="nfs"),
    vpools.PoolSpec("p", "netfs", target_path="/mnt/cifs", source_hosts=("fileserver",), source_dir="vmshare",
                    source_format="cifs"),
    vpools.PoolSpec("p", "netfs", target_path="/mnt/gl", source_hosts=("gl1.example.com",), source_dir="gv0",
                    source_format="glusterfs"),
    vpools.PoolSpec("p", "logical", source_name="vg_vms", source_devices=("/dev/sdc", "/dev/sdd")),
    vpools.PoolSpec("p", "logical", source_name="vg_vms", target_path="/dev/vg_vms"),
    vpools.PoolSpec("p", "disk", source_devices=("/dev/sde",), source_format="dos"),
    vpools.PoolSpec("p", "iscsi", source_hosts=("[2001:db8::10]:3260",), target_iqn=IQN),
    vpools.PoolSpec("p", "iscsi", source_hosts=("san.example.com",), target_iqn=IQN, initiator_iqn=INITIATOR,
                    auth_username="u", auth_secret_uuid=SECRET),
    vpools.PoolSpec("p", "iscsi-direct", source_hosts=("192.0.2.10:3260",), target_iqn=IQN,
                    initiator_iqn=INITIATOR),
    vpools.PoolSpec("p", "rbd", source_name="rbd", source_hosts=("mon1:6789", "mon2:6789", "mon3:6789"),
                    auth_username="libvirt", auth_secret_uuid=SECRET),
    vpools.PoolSpec("p", "rbd", source_name="rbd", source_hosts=("10.1.1.1",)),
    vpools.PoolSpec("p", "zfs", source_name="tank"),
    vpools.PoolSpec("p", "zfs", source_name="tank", source_devices=("/dev/sdf",)),
]


def test_types_with_one_device_refuse_several_instead_of_dropping_some():
    for pool_type in ("zfs", "fs", "disk"):
        with pytest.raises(ValueError, match="one device"):
            vpools.pool_xml(vpools.PoolSpec("p", pool_type, target_path="/srv/p", source_name="tank",
                                            source_devices=("/dev/sdf", "/dev/sdg")))


def _schema_check(xml: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "pool.xml"
    path.write_text(xml)
    return subprocess.run(["virt-xml-validate", str(path), "storagepool"], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.type}-{len(s.source_hosts)}-{len(s.source_devices)}")
def test_generated_xml_validates_against_libvirts_schema(spec, tmp_path):
    xml = vpools.pool_xml(spec)
    proc = _schema_check(xml, tmp_path)
    assert proc.returncode == 0, f"{proc.stderr}\n{xml}"
    root = ET.fromstring(xml)
    assert root.get("type") == spec.type and root.findtext("name") == "p"


def test_schema_check_catches_broken_xml(tmp_path):
    """The witness itself can fail: a netfs pool without a source host is invalid."""
    xml = vpools.pool_xml(vpools.PoolSpec("p", "netfs", target_path="/mnt/x", source_dir="/export",
                                          source_format="nfs"))
    assert _schema_check(xml, tmp_path).returncode != 0


def test_metacharacters_in_values_are_escaped_not_injected():
    # Builders trust validated input, yet ElementTree still escapes: no element can be smuggled in.
    xml = vpools.pool_xml(vpools.PoolSpec("a</name><x>", "zfs", source_name="t&<y/>"))
    root = ET.fromstring(xml)
    assert root.findtext("name") == "a</name><x>" and root.findtext("source/name") == "t&<y/>"
    assert root.find("x") is None


def test_capabilities_parse_marks_unsupported_types():
    xml = """<storagepoolCapabilities>
      <pool type='dir' supported='yes'><volOptions><defaultFormat type='raw'/></volOptions></pool>
      <pool type='fs' supported='yes'><poolOptions><defaultFormat type='auto'/>
        <enum name='sourceFormatType'><value>auto</value><value>ext4</value></enum></poolOptions></pool>
      <pool type='zfs' supported='no'/></storagepoolCapabilities>"""
    caps = vpools.parse_pool_capabilities(xml)
    assert caps["dir"].supported and caps["fs"].source_formats == ("auto", "ext4")
    assert caps["fs"].default_format == "auto"
    assert not caps["zfs"].supported


def test_supported_types_come_from_the_hosts_libvirt():
    with open_host(LIBVIRT_URI) as lv:
        caps = vpools.supported_pool_types(lv)
    witness = virsh("pool-capabilities")
    root = ET.fromstring(witness)
    for pool in root.findall("pool"):
        assert caps[pool.get("type")].supported == (pool.get("supported") == "yes")
    assert caps["dir"].supported


# -- validators ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "..", "../etc", "a/b", "it's", 'say"hi"', "<pool>", "a&b", "a b",
                                  "-rf", ".hidden", "x" * 101, "tab\there", "new\nline", "$(id)"])
def test_bad_pool_names_are_refused(name):
    with pytest.raises(ValueError) as exc:
        vpools.validate_pool_name(name)
    assert str(exc.value)


@pytest.mark.parametrize("path", ["", "/", "/etc", "/etc/pools", "/usr", "/usr/local/vms", "/proc/x", "/boot/vm",
                                  "/var", "/tmp", "relative/dir", "vms", "/srv/../etc", "/srv/./vms", "/srv//vms",
                                  "/srv/vms/", "/srv/it's", '/srv/"q"', "/srv/<x>", "/srv/a&b", "/srv/a b",
                                  "/dev/sdb", "/srv/$(id)"])
def test_bad_directory_paths_are_refused(path):
    with pytest.raises(ValueError) as exc:
        vpools.validate_directory_path(path)
    assert str(exc.value)


@pytest.mark.parametrize("path", ["/var/lib/libvirt/images/vms", "/srv/pools/a", "/tmp/pytest/x", "/data/vm_1"])
def test_good_directory_paths_pass(path):
    assert vpools.validate_directory_path(path) == path


@pytest.mark.parametrize("path", ["sdb", "/dev", "/dev/", "/etc/passwd", "/dev/../etc/x", "/dev/sd b"])
def test_bad_device_paths_are_refused(path):
    with pytest.raises(ValueError):
        vpools.validate_device_path(path)


@pytest.mark.parametrize("text,expected", [("nfs.example.com", ("nfs.example.com", None)),
                                           ("10.0.0.1:2049", ("10.0.0.1", 2049)),
                                           ("[2001:db8::1]:3260", ("2001:db8::1", 3260)),
                                           ("2001:db8::1", ("2001:db8::1", None))])
def test_host_addresses(text, expected):
    assert vpools.validate_host_address(text) == expected


@pytest.mark.parametrize("text", ["", "host name", "h:0", "h:70000", "h:x", "a'b", "<h>", "-h"])
def test_bad_host_addresses(text):
    with pytest.raises(ValueError):
        vpools.validate_host_address(text)


def test_iqn_and_uuid_checks():
    assert vpools.validate_iqn(IQN) == IQN
    for bad in ["iqn.2024-13.com.x", "eui.02004567A425678D", "iqn.24-01.x", "iqn.2024-01.x:a'b"]:
        with pytest.raises(ValueError):
            vpools.validate_iqn(bad)
    assert vpools.validate_uuid(SECRET.upper()) == SECRET
    with pytest.raises(ValueError):
        vpools.validate_uuid("not-a-uuid")


def test_pasted_xml_summary_refuses_entities_and_other_roots():
    with pytest.raises(ValueError, match="DOCTYPE"):
        vpools.summarize_pool_xml('<!DOCTYPE p [<!ENTITY x "y">]><pool type="dir"><name>&x;</name></pool>')
    with pytest.raises(ValueError, match="<pool>"):
        vpools.summarize_pool_xml("<volume><name>x</name></volume>")
    with pytest.raises(ValueError, match="well-formed"):
        vpools.summarize_pool_xml("<pool type='dir'><name>x</name>")


# -- the define form against the real libvirtd ---------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


# conftest's sweep removes such pools left behind by a killed run, and spares those of live runs.
POOL_PREFIX = f"{TEST_POOL_PREFIX}{os.getpid()}-"


def _name() -> str:
    return f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"


def _forget(name: str) -> None:
    virsh("pool-destroy", name, check=False)
    virsh("pool-undefine", name, check=False)


def _supported() -> dict[str, vpools.PoolTypeSupport]:
    with open_host(LIBVIRT_URI) as lv:
        return vpools.supported_pool_types(lv)


@pytestmark_db
@pytest.mark.parametrize("pool_type", list(FORM_INPUTS))
def test_defining_each_type_succeeds_or_shows_libvirts_error(pool_type, admin_client, local_host, celery_worker):
    name = _name()
    url = f"/pools/define/on/{local_host.pk}/?type={pool_type}"
    page = admin_client.get(url)
    assert page.status_code == 200
    data = {"type": pool_type, "name": name, **FORM_INPUTS[pool_type]}
    support = _supported()[pool_type]
    try:
        preview = admin_client.post(url, {**data, "action": "preview"})
        assert preview.status_code == 200
        if not support.supported:
            assert "does not support" in page.content.decode() and "unavailable" in page.content.decode()
            assert b"pool-xml-preview" not in preview.content
            # libvirt itself refuses it with its own words, which the form would show.
            xml = vpools.pool_xml(vpools.PoolSpec(name, pool_type, source_name="tank", source_hosts=("mon1",),
                                                  target_iqn=IQN, initiator_iqn=INITIATOR))
            with open_host(LIBVIRT_URI) as lv, pytest.raises(VirtError) as exc:
                vpools.define_pool(lv, xml)
            assert str(exc.value)
            assert name not in virsh("pool-list", "--all", "--name")
            return
        assert b"pool-xml-preview" in preview.content, preview.content.decode()[:3000]
        response = admin_client.post(url, {**data, "action": "define"})
        assert response.status_code == 302, response.content.decode()[:3000]
        job = wait_for_job(Job.objects.get(kind="pool-define", pool_name=name).pk, timeout=60)
        assert response["Location"] == job.get_absolute_url()
        if job.state == Job.State.SUCCEEDED:
            pool = StoragePool.objects.get(host=local_host, name=name)
            assert job.pool_id == pool.pk and job.params["result_url"] == pool.get_absolute_url()
            dumped = ET.fromstring(virsh("pool-dumpxml", name))
            assert dumped.get("type") == pool_type and pool.type == pool_type
            assert not pool.is_active  # defined only: nothing mounted, built or started
        else:
            assert job.state == Job.State.FAILED and "libvirt refused to define the pool" in job.error, job.log
            assert name not in virsh("pool-list", "--all", "--name")
    finally:
        _forget(name)


@pytestmark_db
def test_raw_xml_is_validated_by_libvirt_before_anything_is_defined(admin_client, local_host, tmp_path,
                                                                   celery_worker):
    url = f"/pools/define/on/{local_host.pk}/?type=xml"
    name = _name()
    # Well-formed, passes our checks, but libvirt's schema has no <colour> in a pool.
    bad = f"<pool type='dir'><name>{name}</name><colour>red</colour><target><path>{tmp_path}/p</path></target></pool>"
    response = admin_client.post(url, {"type": "xml", "xml": bad, "action": "define"})
    assert response.status_code == 302
    job = wait_for_job(Job.objects.get(kind="pool-define", pool_name=name).pk, timeout=60)
    assert job.state == Job.State.FAILED and "libvirt refused to define the pool" in job.error
    assert "libvirt refused to define the pool" in admin_client.get(response["Location"]).content.decode()
    assert name not in virsh("pool-list", "--all", "--name")
    good = f"<pool type='dir'><name>{name}</name><target><path>{tmp_path}/p</path></target></pool>"
    try:
        response = admin_client.post(url, {"type": "xml", "xml": good, "action": "define"})
        assert response.status_code == 302
        job = wait_for_job(Job.objects.filter(kind="pool-define", pool_name=name).latest("pk").pk, timeout=60)
        assert job.state == Job.State.SUCCEEDED, job.error
        assert name in virsh("pool-list", "--all", "--name")
        assert StoragePool.objects.filter(host=local_host, name=name, type="dir").exists()
    finally:
        _forget(name)


@pytestmark_db
@pytest.mark.parametrize("xml,message", [
    ("<pool type='dir'><name>../x</name><target><path>/srv/x</path></target></pool>", "pool name"),
    ("<pool type='dir'><name>vstest-ok</name><target><path>/etc/x</path></target></pool>", "system directory"),
    ("<pool type='dir'><name>vstest-ok</name><target><path>srv/x</path></target></pool>", "absolute"),
    ("<pool type='fs'><name>vstest-ok</name><source><device path='/etc/passwd'/></source>"
     "<target><path>/srv/x</path></target></pool>", "not a device"),
    ("<pool type='nosuch'><name>vstest-ok</name></pool>", "does not know pool type"),
    ("not xml at all", "not well-formed"),
])
def test_raw_xml_bad_input_gets_form_errors(xml, message, admin_client, local_host):
    response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=xml",
                                 {"type": "xml", "xml": xml, "action": "define"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "vstest-ok" not in virsh("pool-list", "--all", "--name")
