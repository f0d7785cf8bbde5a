"""virt/imagecheck under Hypothesis: fuzzed qcow2 headers, with qemu-img as the witness.

Properties:
1. inspect() raises nothing but UnsafeImage, whatever the bytes (and never its "internal" fallback, which would
   mean a bug in the parser);
2. whenever inspect() passes an image, `qemu-img info -f qcow2 -U` (when it opens the image at all) reports no
   backing file and no external data file, and the virtual size inspect() read.

The fuzzed images are a real qcow2 (made by qemu-img, so qemu can open it) whose first cluster is rebuilt from
drawn fields. Every file name the generator writes (backing files, data files) points into the test's temporary
directory; random payloads hold no '/' or ':', so no name can lead anywhere else. qemu-img info opens no backing
file (it is not asked for the chain).
"""

from __future__ import annotations

import functools
import json
import os
import struct
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.virt.test_imagecheck_unit import build_qcow2, file_head, qemu_img
from virtstorage.virt.imagecheck import (
    EXT_BACKING_FORMAT,
    EXT_BITMAPS,
    EXT_CRYPTO_HEADER,
    EXT_DATA_FILE,
    EXT_FEATURE_TABLE,
    HEAD_BYTES,
    UnsafeImage,
    detect_format,
    inspect,
    needed_bytes,
)

DIR = b"@DIR@"  # replaced by the test's temporary directory
TEMPLATE_CLUSTER_BITS = (9, 12, 16)
TEMPLATE_SIZE = 1024 * 1024
FUZZ = settings(max_examples=200, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies -------------------------------------------------------------------------------------------------------

_names = st.sampled_from([
    DIR + b"/base.img", b"base.img", DIR + b"/data.raw", b"data.raw", DIR + b"/./base.img", b"sub/../base.img",
    DIR + b"/missing.raw", b'json:{"driver":"file","filename":"' + DIR + b'/base.img"}', b"file:" + DIR + b"/data.raw",
    DIR + b"/a\x00b", DIR + b"/\xff\xfe.img", DIR + b"/" + b"n" * 1100, b"",
])
_safe_bytes = st.binary(max_size=64).map(lambda b: b.replace(b"/", b"_").replace(b":", b"_"))
_payloads = {
    EXT_DATA_FILE: _names,
    EXT_BACKING_FORMAT: st.sampled_from([b"raw", b"qcow2", b"vmdk", b""]) | _safe_bytes,
    EXT_FEATURE_TABLE: st.sampled_from([bytes(48), b"\x00\x02external data file".ljust(48, b"\x00")]) | _safe_bytes,
    EXT_BITMAPS: st.just(bytes(24)) | _safe_bytes,
    EXT_CRYPTO_HEADER: st.just(bytes(16)) | _safe_bytes,
}
_kinds = st.sampled_from([EXT_FEATURE_TABLE, EXT_BITMAPS, EXT_BACKING_FORMAT, EXT_FEATURE_TABLE, EXT_BITMAPS,
                          EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_CRYPTO_HEADER, 0, None])
_RARE = object()


def _mostly(common: list, rare: st.SearchStrategy, one_in: int = 8) -> st.SearchStrategy:
    """A value from common, and one time in one_in (about) one drawn from rare."""
    picks = common * max(1, (one_in - 1) // max(1, len(common))) + [_RARE]
    return st.sampled_from(picks).flatmap(lambda pick: rare if pick is _RARE else st.just(pick))


def _bits(common: list[int], rare: list[int]) -> st.SearchStrategy[int]:
    """0, or bits of common, or (rarely) some bits of rare too."""
    chosen = st.lists(st.sampled_from(common), max_size=2) | st.lists(st.sampled_from(common + rare), max_size=3)
    return _mostly([0, 0], chosen.map(lambda bits: sum({1 << b for b in bits})), one_in=3)


@st.composite
def _extensions(draw: st.DrawFn) -> tuple:
    kind = draw(_kinds)
    if kind is None:
        kind = draw(st.integers(0, 2**32 - 1))
    payload = draw(_payloads.get(kind, _safe_bytes))
    lie = draw(st.sampled_from(["exact"] * 10 + ["delta", "random"]))
    if lie == "exact":
        return (kind, payload)
    declared = len(payload) + draw(st.integers(-9, 9)) if lie == "delta" else draw(st.integers(0, 2**32 - 1))
    return (kind, payload, declared)


@st.composite
def qcow2_specs(draw: st.DrawFn) -> dict:
    """The fields of a first cluster for build_qcow2: mostly what qemu accepts, often not."""
    u32, u64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
    spec: dict = {
        "base_bits": draw(st.sampled_from(TEMPLATE_CLUSTER_BITS)),
        "version": draw(_mostly([3, 2], st.sampled_from([0, 1, 4]) | u32)),
        "cluster_bits": draw(_mostly([None], st.sampled_from([8, 9, 12, 16, 21, 22, 0]) | u32)),
        "size": draw(_mostly([None], st.sampled_from([0, TEMPLATE_SIZE + 100]) | u64)),
        "crypt_method": draw(_mostly([0], st.sampled_from([1, 2, 3]) | u32)),
        "incompatible": draw(_bits([0, 1, 3, 4], [2, 5, 31, 63])),
        "compatible": draw(_mostly([0, 1], st.just(2**63) | u64)),
        "autoclear": draw(_bits([0], [1, 2, 40])),
        "refcount_order": draw(_mostly([4], st.sampled_from([0, 6, 7]) | u32)),
        "header_length": draw(_mostly([None, 104, 112, 120],
                                      st.sampled_from([105, 0, 72, 103, 4096, 4097]) | st.integers(0, 70000))),
        "extensions": draw(st.lists(_extensions(), max_size=3)),
        "end_marker": draw(_mostly([True], st.just(False), one_in=4)),
        "backing": None,
    }
    if draw(_mostly([False], st.just(True), one_in=4)):
        spec["backing"] = (draw(_names),
                           draw(st.none() | st.integers(0, (1 << spec["base_bits"]) + 64)),
                           draw(st.none() | st.just(0) | st.integers(0, 2000)))
    return spec


# -- materializing a spec as a file ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[int, bytes]:
    """Clean qcow2 images qemu-img made, by cluster_bits: their tables make the fuzzed headers openable."""
    base = tmp_path_factory.mktemp("templates")
    made = {}
    for bits in TEMPLATE_CLUSTER_BITS:
        path = base / f"template-{bits}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-o", f"cluster_size={1 << bits}", str(path), str(TEMPLATE_SIZE))
        made[bits] = path.read_bytes()
    return made


def materialize(spec: dict, templates: dict[int, bytes], directory: Path) -> bytes:
    """The whole image file: the template with its first cluster rebuilt from spec (names put in directory)."""
    def here(name: bytes) -> bytes:
        return name.replace(DIR, os.fsencode(directory))

    base_bits = spec["base_bits"]
    template = templates[base_bits]
    fields = {key: spec[key] for key in ("version", "crypt_method", "incompatible", "compatible", "autoclear",
                                         "refcount_order", "header_length", "end_marker")}
    fields["cluster_bits"] = base_bits if spec["cluster_bits"] is None else spec["cluster_bits"]
    fields["size"] = TEMPLATE_SIZE if spec["size"] is None else spec["size"]
    fields["extensions"] = [(kind, here(payload), *declared) for kind, payload, *declared in spec["extensions"]]
    if spec["backing"] is not None:
        name, offset, size = spec["backing"]
        fields.update(backing=here(name), backing_offset=offset, backing_size=size)
    first = build_qcow2(tables=template[36:72], length=1 << base_bits, **fields)
    image = bytearray(template)
    image[:len(first)] = first
    return bytes(image)


def qemu_info(path: Path) -> dict | None:
    """qemu-img info's JSON for the image opened as qcow2 (no backing chain), or None when qemu refuses it."""
    proc = qemu_img("info", "-f", "qcow2", "-U", "--output=json", str(path), check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _inspect_or_reason(head: bytes, stated: str | None) -> str:
    """"passed", or the reason inspect() refused; fails on any other exception (property 1)."""
    try:
        inspect(head, stated)
    except UnsafeImage as exc:
        assert exc.reason != "internal", f"the parser failed on these bytes: {exc.__cause__!r}"
        return exc.reason
    return "passed"


# -- the properties ---------------------------------------------------------------------------------------------------

def test_fuzzed_qcow2_headers_pass_only_when_qemu_sees_no_other_file(tmp_path_factory, templates):
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "base.img").write_bytes(bytes(4096))
    (directory / "data.raw").write_bytes(bytes(4096))
    path = directory / "image.qcow2"
    stats: Counter[str] = Counter()

    @FUZZ
    @given(spec=qcow2_specs())
    def check(spec: dict) -> None:
        path.write_bytes(materialize(spec, templates, directory))
        head = file_head(path)
        outcome = _inspect_or_reason(head, "qcow2")
        assert _inspect_or_reason(head, None) == outcome or outcome != "passed"
        assert _inspect_or_reason(head, "raw") == "format-mismatch"  # qcow2's magic is always there
        info = qemu_info(path)
        event(f"inspect: {outcome}")
        event(f"qemu-img info: {'opened' if info else 'refused'}")
        stats[outcome] += 1
        if info is None:
            return
        others = [key for key in ("backing-filename", "full-backing-filename") if key in info]
        data = info.get("format-specific", {}).get("data", {})
        others += [key for key in ("data-file", "data-file-raw") if data.get(key)]
        if others:
            stats["qemu saw another file"] += 1
        if outcome != "passed":
            return
        stats["passed and opened by qemu"] += 1
        assert not others, f"inspect passed an image whose qemu-img info reports {others}: {info}"
        facts = inspect(head, "qcow2")
        assert info["virtual-size"] == facts.virtual_size // 512 * 512

    check()
    print(dict(stats))
    assert stats["passed and opened by qemu"] >= 5, f"the generator hardly makes valid images: {dict(stats)}"
    assert stats["passed"] < sum(stats.values()), dict(stats)


def test_the_witness_sees_what_inspect_refuses(tmp_path, templates):
    """The fuzz test's oracle works: qemu-img info does report the data files and backing files it is given."""
    data = tmp_path / "data.raw"
    data.write_bytes(bytes(4096))
    cases = {
        "data-file": {"incompatible": 1 << 2, "extensions": [(EXT_DATA_FILE, DIR + b"/data.raw")]},
        "backing-file": {"backing": (DIR + b"/base.img", None, None)},
    }
    for reason, fields in cases.items():
        spec = {"base_bits": 16, "version": 3, "cluster_bits": None, "size": None, "crypt_method": 0,
                "incompatible": 0, "compatible": 0, "autoclear": 0, "refcount_order": 4, "header_length": None,
                "extensions": [], "end_marker": True, "backing": None} | fields
        path = tmp_path / f"{reason}.qcow2"
        path.write_bytes(materialize(spec, templates, tmp_path))
        info = qemu_info(path)
        assert info is not None
        if reason == "data-file":
            assert info["format-specific"]["data"]["data-file"] == str(data)
        else:
            assert info["backing-filename"] == str(tmp_path / "base.img")
        assert _inspect_or_reason(file_head(path), "qcow2") == reason


_STARTS = [b"", b"QFI\xfb", b"QFI\xfb\x00\x00\x00\x02", b"QFI\xfb\x00\x00\x00\x03", b"QFI", b"QED\x00", b"KDMV",
           b"COWD", b"conectix", b"vhdxfile", b"LUKS\xba\xbe", b"WithouFreSpacExt", b"OOOM", b"#", b" \n",
           b"version=", b"Bochs Virtual HD Image"]


@settings(max_examples=300, deadline=None, database=None)
@given(start=st.sampled_from(_STARTS), rest=st.binary(max_size=2048), stated=st.sampled_from([None, "raw", "qcow2"]))
def test_any_bytes_raise_nothing_but_unsafe_image(start, rest, stated):
    head = start + rest
    assert isinstance(detect_format(head), str)
    assert len(head) <= needed_bytes(head) <= max(len(head), 2 * 1024 * 1024)
    _inspect_or_reason(head, stated)


@settings(max_examples=300, deadline=None, database=None)
@given(flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.none() | st.integers(0, 600))
def test_mutated_real_headers_raise_nothing_but_unsafe_image(flips, cut):
    head = bytearray(_real_header())
    for offset, value in flips:
        head[offset] = value
    _inspect_or_reason(bytes(head[:cut] if cut is not None else head), "qcow2")


@functools.cache
def _real_header() -> bytes:
    """The head of a qemu-made qcow2 with extensions (data file, feature table), made once."""
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "real.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={Path(tmp) / 'data.raw'}", str(image), "1M")
        return image.read_bytes()[:HEAD_BYTES]


def test_the_real_header_is_refused_for_its_data_file():
    assert _inspect_or_reason(_real_header(), "qcow2") == "data-file"
    clean = bytearray(_real_header())
    clean[72:80] = bytes(8)  # no data file bit: the extension alone still refuses it
    assert struct.pack(">I", EXT_DATA_FILE) in clean
    assert _inspect_or_reason(bytes(clean), "qcow2") == "data-file"
