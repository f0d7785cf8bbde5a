"""The sparse format's stream reader (virtstorage/virt/sparse_format.py), on bytes cut into blocks anywhere:
frames checked as they come, a data frame's bytes handed on in blocks, never gathered. Pure code: no libvirt."""

from __future__ import annotations

import os

import pytest

from virtstorage.virt import sparse_format as sf


def encode(frames: list[tuple[bytes, int, bytes | int]], size: int) -> bytes:
    """A stream: (DATA, offset, data) and (HOLE, offset, length) frames, then the end frame."""
    out, data = [sf.MAGIC], 0
    for kind, offset, payload in frames:
        if kind == sf.DATA:
            out += [sf.data_header(offset, len(payload)), payload]
            data += len(payload)
        else:
            out.append(sf.hole_frame(offset, payload))
    return b"".join([*out, sf.end_frame(size, data)])


def blocks(stream: bytes, cuts: list[int]) -> list[list[bytes]]:
    """The stream cut at these positions into blocks of one or two pieces (as the ASGI body arrives)."""
    edges = [0, *sorted(cuts), len(stream)]
    parts = [stream[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]
    return [[part[: len(part) // 2], part[len(part) // 2:]] for part in parts]


def read_all(reader: sf.FrameReader) -> list[tuple[bytes, int, int, bytes]]:
    seen = []
    for frame in reader.frames():
        data = b"".join(bytes(piece) for block in reader.data() for piece in block) if frame.kind == sf.DATA else b""
        seen.append((frame.kind, frame.offset, frame.length, data))
    return seen


@pytest.mark.parametrize("cuts", [[], [1], [8, 9, 25], list(range(0, 300, 7)), [5000, 5001, 70000]])
def test_frames_and_their_data_arrive_whatever_the_block_boundaries(cuts):
    first, second = os.urandom(5000), os.urandom(70_000)
    stream = encode([(sf.HOLE, 0, 100), (sf.DATA, 100, first), (sf.DATA, 10_000, second), (sf.HOLE, 90_000, 10)],
                    100_000)
    seen = read_all(sf.FrameReader(blocks(stream, cuts), size=100_000))
    assert seen == [(sf.HOLE, 0, 100, b""), (sf.DATA, 100, 5000, first), (sf.DATA, 10_000, 70_000, second),
                    (sf.HOLE, 90_000, 10, b""), (sf.END, 100_000, 75_000, b"")]


def test_a_data_frame_is_handed_on_in_blocks_not_gathered():
    data = os.urandom(4 * 1024 * 1024)
    stream = encode([(sf.DATA, 0, data)], len(data))
    reader = sf.FrameReader([[stream[i:i + 65536]] for i in range(0, len(stream), 65536)], size=len(data))
    frames = reader.frames()
    assert next(frames).kind == sf.DATA
    sizes = [sum(len(piece) for piece in block) for block in reader.data()]
    assert sum(sizes) == len(data) and max(sizes) <= 65536  # never more than what one block brought
    assert next(frames).kind == sf.END


def test_what_a_caller_leaves_of_a_data_frame_is_skipped():
    stream = encode([(sf.DATA, 0, b"a" * 1000), (sf.DATA, 2000, b"b" * 10)], 4000)
    reader = sf.FrameReader(blocks(stream, [30, 500]), size=4000)
    kinds = [(frame.kind, frame.offset) for frame in reader.frames()]  # no data() read at all
    assert kinds == [(sf.DATA, 0), (sf.DATA, 2000), (sf.END, 4000)]


def test_a_stream_cut_inside_a_data_frame_hands_on_what_arrived_then_refuses():
    data = os.urandom(10_000)
    stream = encode([(sf.DATA, 0, data)], 20_000)
    cut = len(sf.MAGIC) + sf.HEADER.size + 6000
    reader = sf.FrameReader(blocks(stream[:cut], [100, 3000]), size=20_000)
    frames = reader.frames()
    next(frames)
    arrived = b"".join(bytes(piece) for block in reader.data() for piece in block)
    assert arrived == data[:6000]
    with pytest.raises(sf.FormatError, match="cut off inside a data frame: 4000 bytes"):
        next(frames)


@pytest.mark.parametrize("stream, refusal", [
    (b"VSSPARS2" + bytes(17), "not a sparse stream"),
    (sf.MAGIC + sf.hole_frame(0, 10)[:9], "cut off"),
    (sf.MAGIC + sf.hole_frame(100, 10) + sf.hole_frame(50, 10) + sf.end_frame(1000, 0), "overlaps"),
    (sf.MAGIC + sf.hole_frame(990, 11) + sf.end_frame(1000, 0), "past the end"),
    (sf.MAGIC + sf.hole_frame(10, 0) + sf.end_frame(1000, 0), "empty"),
    (sf.MAGIC + sf.HEADER.pack(b"X", 0, 1) + sf.end_frame(1000, 0), "Unknown frame kind"),
    (sf.MAGIC + sf.data_header(0, 2) + b"ab" + sf.end_frame(1000, 3), "end frame says"),
    (sf.MAGIC + sf.end_frame(999, 0), "end frame says"),
    (sf.MAGIC + sf.end_frame(1000, 0) + b"x", "after its end frame"),
    (sf.MAGIC + sf.hole_frame(0, 10), "cut off"),
])
def test_malformed_streams_are_refused_with_the_reason(stream, refusal):
    with pytest.raises(sf.FormatError, match=refusal):
        read_all(sf.FrameReader(blocks(stream, [3, 12]), size=1000))


def test_decode_reads_a_whole_stream_and_refuses_a_cut_one():
    import io

    data = os.urandom(3000)
    stream = encode([(sf.HOLE, 0, 5), (sf.DATA, 5, data)], 4000)
    frames = list(sf.decode(io.BytesIO(stream)))
    assert [(f.kind, f.offset, f.length) for f in frames] == [(sf.HOLE, 0, 5), (sf.DATA, 5, 3000), (sf.END, 4000, 3000)]
    assert frames[1].data == data
    with pytest.raises(sf.FormatError, match="cut off"):
        list(sf.decode(io.BytesIO(stream[:100])))
