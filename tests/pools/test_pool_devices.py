"""Pools on the host's own block devices (fs, disk, logical, zfs) use only the devices, volume groups and zpools set
aside for them (POOL_DEVICES, POOL_GROUPS; none by default): the define forms and pasted XML refuse the others, and
a build or start job refuses a pool that uses them whoever defined it (a build formats, an fs start mounts)."""

from __future__ import annotations

import html
import os
import uuid

import pytest

from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import TEST_POOL_PREFIX, virsh, wait_for_job
from virtstorage.virt import pools as vpools

pytestmark = pytest.mark.django_db(transaction=True)

POOL_PREFIX = f"{TEST_POOL_PREFIX}{os.getpid()}-dev-"
ROOT_DISK = "/dev/vda"  # what a host's system disk is often called (this one's, say)


def _define_page(client, host, pool_type: str, **fields) -> tuple[bool, str]:
    """(whether the form previewed the pool's XML, the page) for the fields posted as a preview."""
    data = {"type": pool_type, "name": f"{POOL_PREFIX}x", "action": "preview", **fields}
    page = html.unescape(client.post(f"/pools/define/on/{host.pk}/?type={pool_type}", data).content.decode())
    return "pool-xml-preview" in page, page


@pytest.mark.parametrize(("pool_type", "fields"), [
    ("fs", {"source_device": ROOT_DISK, "source_format": "ext4", "target_path": "/var/lib/libvirt/images/vst-fs"}),
    ("disk", {"source_device": ROOT_DISK, "source_format": "gpt"}),
    ("logical", {"source_name": "vstestvg", "source_devices": f"/dev/vdc\n{ROOT_DISK}"}),
])
def test_the_define_form_refuses_a_device_not_set_aside(admin_client, local_host, pool_type, fields):
    previewed, page = _define_page(admin_client, local_host, pool_type, **fields)
    assert not previewed
    assert f"{ROOT_DISK} is not a block device set aside for pools (POOL_DEVICES: /dev/vdb1," in page


@pytest.mark.parametrize(("pool_type", "fields"), [
    ("logical", {"source_name": "debian-vg"}),  # the host's root volume group, say: its LVs would be volumes
])
def test_the_define_form_refuses_a_group_not_set_aside(admin_client, local_host, pool_type, fields):
    previewed, page = _define_page(admin_client, local_host, pool_type, **fields)
    assert not previewed and f"{fields['source_name']} is not a volume group or zpool set aside for pools" in page


def test_nothing_is_set_aside_by_default_and_a_pattern_sets_devices_aside(admin_client, local_host, settings):
    settings.POOL_DEVICES, settings.POOL_GROUPS = [], []
    previewed, page = _define_page(admin_client, local_host, "disk", source_device="/dev/sdb", source_format="gpt")
    assert not previewed and "No block device is set aside for pools on this server: POOL_DEVICES" in page
    previewed, page = _define_page(admin_client, local_host, "logical", source_name="vg0")
    assert not previewed and "No volume group or zpool is set aside for pools on this server: POOL_GROUPS" in page
    settings.POOL_DEVICES, settings.POOL_GROUPS = ["/dev/disk/by-id/wwn-*", "/dev/sd[b-z]"], ["vmdata-*"]
    assert _define_page(admin_client, local_host, "disk", source_device="/dev/sdb", source_format="gpt")[0]
    assert _define_page(admin_client, local_host, "disk", source_device="/dev/disk/by-id/wwn-0x5000c5",
                        source_format="gpt")[0]
    for device in ("/dev/sda", "/dev/sdb1", "/dev/sdb/../sda"):  # not the pattern's; not plainly written
        assert not _define_page(admin_client, local_host, "disk", source_device=device)[0], device
    assert _define_page(admin_client, local_host, "logical", source_name="vmdata-1")[0]
    assert not _define_page(admin_client, local_host, "logical", source_name="vg-root")[0]


@pytest.mark.parametrize(("xml", "refused"), [
    (f"<pool type='fs'><name>{{name}}</name><source><device path='{ROOT_DISK}'/></source>"
     "<target><path>/var/lib/libvirt/images/vst-fs</path></target></pool>", ROOT_DISK),
    (f"<pool type='disk'><name>{{name}}</name><source><device path='{ROOT_DISK}'/></source>"
     "<target><path>/dev</path></target></pool>", ROOT_DISK),
    ("<pool type='logical'><name>{name}</name><source><name>debian-vg</name></source>"
     "<target><path>/dev/debian-vg</path></target></pool>", "debian-vg"),
])
def test_pasted_xml_refuses_devices_and_groups_not_set_aside(admin_client, local_host, xml, refused):
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=xml",
                                 {"type": "xml", "xml": xml.format(name=name), "action": "define"})
    assert f"{refused} is not a " in html.unescape(response.content.decode())
    assert name not in virsh("pool-list", "--all", "--name").split() and not Job.objects.exists()


def test_each_local_device_type_checks_its_devices_and_group_and_other_types_none():
    """zfs as well (this test host's libvirt has no zfs, so its forms stop earlier): the rule is one function."""
    def refused(xml: str) -> list[str]:
        return vpools.source_refusals(vpools.summarize_pool_xml(xml), ["/dev/sdb"], ["tank"])

    assert len(refused("<pool type='zfs'><name>z</name><source><name>rpool</name><device path='/dev/sda'/>"
                       "</source></pool>")) == 2
    assert refused("<pool type='zfs'><name>z</name><source><name>tank</name><device path='/dev/sdb'/>"
                   "</source></pool>") == []
    assert refused("<pool type='rbd'><name>r</name><source><name>rpool</name><host name='mon1'/></source>"
                   "</pool>") == []  # a Ceph pool's name is not a volume group
    assert refused("<pool type='disk'><name>d</name><source><device path='/dev/sda'/></source></pool>") == [
        "/dev/sda is not a block device set aside for pools (POOL_DEVICES: /dev/sdb)."]


def test_build_and_start_refuse_a_pool_defined_elsewhere_on_a_device_not_set_aside(
        admin_client, local_host, celery_worker, tmp_path):
    """Defined behind the app's back (virsh) on a device that is not set aside: neither formatted nor mounted."""
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    virsh("pool-define-as", name, "fs", "--source-dev", "/dev/vstest-no-such-disk", "--target", str(tmp_path))
    try:
        sync_host(local_host, pool_names=[name])
        pool = StoragePool.objects.get(host=local_host, name=name)
        posts = {"pool-build": (f"/pools/{pool.pk}/build/", {"overwrite": "on", "confirm_name": name}),
                 "pool-start": (f"/pools/{pool.pk}/do/start/", {})}
        for kind, (url, data) in posts.items():  # one lifecycle job at a time on a pool
            admin_client.post(url, data)
            job = wait_for_job(Job.objects.get(pool_name=name, kind=kind).pk, timeout=60)
            assert job.state == Job.State.FAILED and ("/dev/vstest-no-such-disk is not a block device set aside "
                                                      "for pools (POOL_DEVICES: /dev/vdb1,") in job.error, job.error
        assert "inactive" in virsh("pool-info", name)
    finally:
        virsh("pool-destroy", name, check=False)
        virsh("pool-undefine", name, check=False)
