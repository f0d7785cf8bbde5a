"""Unit tests of pure code in the libvirt layer and the size filters (no libvirtd needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt
import pytest

from virtstorage.templatetags.sizes import percent, size
from virtstorage.virt import errors, xmlio
from virtstorage.virt.units import binary_size

VOLUME_XML = """<volume type='file'>
  <name>disk.qcow2</name><key>/pool/disk.qcow2</key>
  <capacity unit='bytes'>10737418240</capacity>
  <allocation unit='KiB'>200</allocation>
  <physical unit='bytes'>204800</physical>
  <target><path>/pool/disk.qcow2</path><format type='qcow2'/></target>
  <backingStore><path>/pool/base.qcow2</path><format type='qcow2'/></backingStore>
</volume>"""


def test_parse_volume_reads_every_field_and_scales_units():
    vol = xmlio.parse_volume(VOLUME_XML)
    assert (vol.name, vol.key, vol.path, vol.type, vol.format) == (
        "disk.qcow2", "/pool/disk.qcow2", "/pool/disk.qcow2", "file", "qcow2")
    assert vol.capacity == 10 * 1024**3
    assert vol.allocation == 200 * 1024
    assert vol.physical == 204800
    assert (vol.backing_path, vol.backing_format) == ("/pool/base.qcow2", "qcow2")


def test_parse_pool():
    xml = """<pool type='dir'><name>p</name><uuid>u-1</uuid>
      <capacity unit='bytes'>100</capacity><allocation unit='bytes'>40</allocation>
      <available unit='bytes'>60</available><target><path>/srv/p</path></target></pool>"""
    pool = xmlio.parse_pool(xml, active=True, autostart=False, persistent=True)
    assert (pool.name, pool.uuid, pool.type, pool.target_path) == ("p", "u-1", "dir", "/srv/p")
    assert (pool.capacity, pool.allocation, pool.available) == (100, 40, 60)


@pytest.mark.parametrize("name", ["a<b>&c\"d'", "$(id)", "x\ny"])
def test_built_xml_escapes_whatever_it_is_given(name):
    xml = xmlio.volume_xml(name, 1024, fmt="qcow2", allocation=0, backing_path="/p/<base>", backing_format="raw")
    root = ET.fromstring(xml)
    assert root.findtext("name") == name
    assert root.findtext("backingStore/path") == "/p/<base>"
    assert root.find("allocation").text == "0"
    pool = ET.fromstring(xmlio.dir_pool_xml(name, "/srv/a&b"))
    assert pool.findtext("name") == name and pool.findtext("target/path") == "/srv/a&b"


def test_domain_disk_sources():
    xml = """<domain type='kvm'><name>vm</name><devices>
      <disk type='file' device='disk'><source file='/p/a.img'/><target dev='vda'/></disk>
      <disk type='volume' device='disk'><source pool='p' volume='b.img'/><target dev='vdb'/></disk>
      <disk type='file' device='cdrom'><target dev='sda'/></disk></devices></domain>"""
    assert xmlio.domain_disk_sources(xml) == [
        {"file": "/p/a.img", "target": "vda"},
        {"pool": "p", "volume": "b.img", "target": "vdb"},
    ]


def _libvirt_error(code: int, domain: int, message: str) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, 2, None, None, None, 0, 0)
    return exc


@pytest.mark.parametrize(("code", "domain", "message", "expected"), [
    (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_FROM_STORAGE, "no vol", errors.ObjectNotFound),
    (libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_FROM_STORAGE, "no pool", errors.ObjectNotFound),
    (libvirt.VIR_ERR_STORAGE_VOL_EXIST, libvirt.VIR_FROM_STORAGE, "exists", errors.ObjectExists),
    (libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_STORAGE, "pool 'x' already exists", errors.ObjectExists),
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "End of file", errors.HostUnreachable),
    (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_NONE, "closed", errors.HostUnreachable),
    (libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_FROM_STORAGE, "bad xml", errors.InvalidRequest),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_STORAGE, "boom", errors.OperationFailed),
])
def test_libvirt_errors_map_to_few_clear_types(code, domain, message, expected):
    translated = errors.translate(_libvirt_error(code, domain, message))
    assert type(translated) is expected
    assert str(translated) == message


def test_translated_context_reraises():
    with pytest.raises(errors.ObjectNotFound, match="gone"):
        with errors.translated():
            raise _libvirt_error(libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_FROM_STORAGE, "gone")


@pytest.mark.parametrize(("value", "text"), [
    (0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (10 * 1024**3, "10.0 GiB"), (252 * 1024**3, "252 GiB"), (5 * 1024**4, "5.0 TiB"),
    # Rounded, not cut; a number that rounds up to the next unit is shown in it, one that reaches 100 whole.
    (123456789, "118 MiB"), (int(117.4 * 1024**2), "117 MiB"), (1024**2 - 60, "1.0 MiB"),
    (int(1023.4 * 1024), "1023 KiB"), (int(99.96 * 1024), "100 KiB"), (int(99.94 * 1024), "99.9 KiB"),
    (-4096, "-4.0 KiB"), (2**63 - 1, "8.0 EiB"),
])
def test_binary_size(value, text):
    assert binary_size(value) == text


def test_a_page_and_a_message_show_a_size_alike():
    """The size filter (pages) and binary_size (job messages, refusals) write the same digits and unit."""
    from virtstorage.templatetags.sizes import size

    for value in (1536, 123456789, 1024**2 - 60, int(99.96 * 1024), int(1023.4 * 1024), 10 * 1024**3, 2**40 + 1):
        assert f">{binary_size(value)}<" in size(value), value


def test_size_filter_puts_exact_bytes_in_the_title():
    assert str(size(10737418240)) == '<span class="size" title="10,737,418,240 bytes">10.0 GiB</span>'
    assert size(None) == "—"


def test_size_text_is_the_size_filter_without_markup():
    from django.utils import translation

    from virtstorage.templatetags.sizes import size_text

    assert size_text(8 * 1024**2) == "8.0 MiB" and size_text(None) == "—"  # binary, as every page writes sizes
    with translation.override("es"):
        assert size_text(1536 * 1024**2) == "1,5 GiB"


def test_percent_is_clamped_and_safe_on_zero():
    assert percent(50, 200) == 25.0
    assert percent(300, 200) == 100.0
    assert percent(5, 0) == 0.0
