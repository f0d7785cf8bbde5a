"""The unmanaged-file scan (virt/hostfiles.py) on real directories: lstat only, links never followed, sockets
and FIFOs skipped, a bounded scan, and network file systems recognised from mountinfo text."""

from __future__ import annotations

import os
import socket

from virtstorage.virt import hostfiles

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /var/lib/libvirt/images/nfs rw shared:2 - nfs4 srv:/export rw
31 22 0:41 / /mnt/with\\040space rw shared:3 - cifs //srv/share rw
32 22 0:42 / /var/lib/libvirt/images/nfs/local rw shared:4 - xfs /dev/sdb1 rw
33 22 0:43 / /run/user/1000/gvfs rw shared:5 - fuse.gvfsd-fuse gvfsd-fuse rw
"""


def test_network_file_systems_are_recognised_by_the_longest_mount_point():
    assert hostfiles.mount_of("/var/lib/libvirt/images/nfs/a.img", MOUNTINFO) == ("/var/lib/libvirt/images/nfs",
                                                                                   "nfs4")
    assert hostfiles.network_fs("/var/lib/libvirt/images/nfs/a.img", MOUNTINFO) == "nfs4"
    assert hostfiles.network_fs("/var/lib/libvirt/images/nfs", MOUNTINFO) == "nfs4"
    assert hostfiles.network_fs("/var/lib/libvirt/images/nfs/local/a.img", MOUNTINFO) == ""  # a local mount inside
    assert hostfiles.network_fs("/var/lib/libvirt/images/nfsish/a.img", MOUNTINFO) == ""  # not a prefix by name
    assert hostfiles.network_fs("/mnt/with space/x", MOUNTINFO) == "cifs"
    assert hostfiles.network_fs("/run/user/1000/gvfs/x", MOUNTINFO) == "fuse.gvfsd-fuse"
    assert hostfiles.network_fs("/srv/x.img", MOUNTINFO) == ""
    assert hostfiles.network_fs(os.getcwd()) == ""  # this machine's own mountinfo: the checkout is local


def test_a_scan_lists_what_is_not_known_without_following_links(tmp_path):
    (tmp_path / "known.img").write_bytes(b"k" * 100)
    with open(tmp_path / "sparse.img", "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.write(b"x" * 4096)
    (tmp_path / "subdir").mkdir()
    (tmp_path / "to-passwd").symlink_to("/etc/passwd")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    atime_before = os.stat("/etc/passwd").st_atime_ns
    try:
        scan = hostfiles.scan_directory(str(tmp_path), {str(tmp_path / "known.img")})
    finally:
        listener.close()
    by_name = {facts.name: facts for facts in scan.unlisted}
    assert sorted(by_name) == ["dangling", "sparse.img", "subdir", "to-passwd"]
    assert (scan.entries, scan.skipped, scan.truncated, scan.error) == (7, 2, False, "")
    assert by_name["sparse.img"].kind == "file" and by_name["sparse.img"].size == 64 * 1024 * 1024
    assert by_name["sparse.img"].allocated < 1024 * 1024  # holes stay holes in the report
    assert (by_name["to-passwd"].kind, by_name["to-passwd"].link_target) == ("symlink", "/etc/passwd")
    assert by_name["dangling"].kind == "symlink" and by_name["subdir"].kind == "dir"
    assert os.stat("/etc/passwd").st_atime_ns == atime_before  # the link's target was never opened


def test_a_scan_is_bounded_and_says_so(tmp_path):
    for index in range(30):
        (tmp_path / f"f{index:02}").touch()
    scan = hostfiles.scan_directory(str(tmp_path), set(), limit=10)
    assert (scan.entries, len(scan.unlisted), scan.truncated) == (10, 10, True)
    missing = hostfiles.scan_directory(str(tmp_path / "nope"), set())
    assert "cannot be read from here" in missing.error and missing.unlisted == []


def test_file_facts_content_format_and_identity(tmp_path):
    raw = tmp_path / "disk.qcow2"  # raw content, a qcow2 name
    raw.write_bytes(b"\0" * 8192)
    qcow = tmp_path / "disk.img"
    qcow.write_bytes(b"QFI\xfb" + b"\0\0\0\x03" + b"\0" * 4088)
    assert hostfiles.content_format(str(raw)) == "raw" and hostfiles.content_format(str(qcow)) == "qcow2"
    (tmp_path / "link").symlink_to(qcow)
    assert hostfiles.content_format(str(tmp_path / "link")) == ""  # never through a link
    assert hostfiles.file_facts(str(tmp_path / "link")).kind == "symlink"
    assert hostfiles.file_facts(str(tmp_path / "missing")) is None
    before = hostfiles.file_identity(str(raw))
    assert before == hostfiles.file_identity(str(raw)) and before["size"] == 8192
    with open(raw, "r+b") as f:
        f.write(b"changed")
    os.utime(raw, ns=(0, before["mtime_ns"] + 1))
    assert hostfiles.file_identity(str(raw)) != before
    assert hostfiles.file_identity(str(tmp_path / "missing")) == {}
