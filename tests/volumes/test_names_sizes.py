"""Pure tests of the volume name validator and the size parser (no services needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtstorage.virt.units import MAX_SIZE, parse_size, volume_size
from volumes.names import MAX_NAME_BYTES, validate_volume_name

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
NAME_ALPHABET = st.characters(codec="ascii", categories=("L", "N")) | st.sampled_from("._+-")


@pytest.mark.parametrize("name", ["disk.img", "a", "vm-01_root.qcow2", "x+y", "9" * 255, "a.."])
def test_accepts_safe_names(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter a volume name"),
        ("a/b", "'/'"),
        ("..", "start with a letter or digit"),
        (".", "start with a letter or digit"),
        (".hidden", "start with a letter or digit"),
        ("-rf", "start with a letter or digit"),
        ("a\x00b", "NUL"),
        ("<disk>", "'<'"),
        ("a&b", "'&'"),
        ('a"b', "'\"'"),
        ("a'b", "\"'\""),
        ("a b", "' '"),
        ("a\nb", "'\\n'"),
        ("$(id)", "'$'"),
        ("a;b", "';'"),
        ("a" * 256, "at most 255"),
        ("é" * 128, "at most 255"),  # 256 bytes in UTF-8
        ("disque-é", "'é'"),
    ],
)
def test_refuses_unsafe_names_with_a_clear_message(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_volume_name(name)


@given(st.text(max_size=300))
def test_name_validator_accepts_exactly_the_safe_set(text: str) -> None:
    safe = SAFE_NAME.fullmatch(text) is not None and len(text.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
    try:
        result = validate_volume_name(text)
    except ValueError as exc:
        assert not safe, f"refused a safe name: {text!r}"
        assert str(exc)  # always a message for the form
    else:
        assert safe and result == text


@given(st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=255))
def test_accepted_names_are_never_path_tricks(text: str) -> None:
    try:
        validate_volume_name(text)
    except ValueError:
        return
    assert text not in (".", "..") and "/" not in text and not text.startswith(("-", "."))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1048576),
        ("0", 0),
        ("10G", 10 * 1024**3),
        ("10g", 10 * 1024**3),
        ("512 MiB", 512 * 1024**2),
        ("1.5TiB", 3 * 1024**4 // 2),
        ("1.5 K", 1536),
        ("2KB", 2000),
        ("1 GB", 1000**3),
        ("100 bytes", 100),
        ("  7M ", 7 * 1024**2),
        ("0.1K", 103),  # 102.4 rounds up: never smaller than asked
        ("2.0", 2),  # a whole number of bytes, written with a decimal point
        (".5k", 512),
        (4096, 4096),
    ],
)
def test_parses_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter a size"),
        ("   ", "Enter a size"),
        ("-1", "negative"),
        ("-5G", "negative"),
        (-3, "negative"),
        ("ten", "not a size"),
        ("1,5G", "not a size"),
        ("1e9", "not a size"),
        ("3 GiBs", "Unknown unit"),
        ("5 furlongs", "Unknown unit"),
        ("1G2", "not a size"),
        ("nan", "not a size"),
        ("inf", "not a size"),
        ("9" * 40, "too large"),
        ("8EiB", "too large"),
        ("1_000", "not a size"),
        ("1.5", "A number of bytes is whole"),  # it had become 2 bytes
        ("0.5 bytes", "A number of bytes is whole"),
        ("10.25B", "A number of bytes is whole"),
    ],
)
def test_refuses_bad_sizes_with_a_clear_message(text: str | int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(text)


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_plain_numbers_are_bytes(number: int) -> None:
    assert parse_size(str(number)) == number


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([("K", 1024), ("MiB", 1024**2), ("g", 1024**3), ("TiB", 1024**4), ("MB", 1000**2)]),
    st.sampled_from(["", " "]),
)
def test_units_multiply(number: int, unit: tuple[str, int], space: str) -> None:
    suffix, factor = unit
    assert parse_size(f"{number}{space}{suffix}") == number * factor


@given(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False))
def test_decimals_round_up_to_whole_bytes(value) -> None:  # noqa: ANN001 - hypothesis Decimal
    size = parse_size(f"{value}K")
    assert isinstance(size, int)
    assert size - 1 < value * 1024 <= size


@given(st.text(max_size=40))
def test_any_text_gives_bytes_or_a_clear_error(text: str) -> None:
    try:
        size = parse_size(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(size, int) and 0 <= size <= MAX_SIZE


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1024**2, 1024**2), (1024**2 + 1, 1024**2 + 1024), (1181116007, 1181116416), (10 * 1024**3, 10 * 1024**3)],
)
def test_a_volume_size_is_rounded_up_to_a_whole_kib_as_libvirt_makes_a_qcow2(size: int, expected: int) -> None:
    assert volume_size(size) == expected  # 1181116007 bytes ("1.1G"): libvirt made a qcow2 of 1181116416


@pytest.mark.parametrize(("size", "message"), [(1, "at least 1 MiB"), (1024**2 - 1, "at least 1 MiB"),
                                               (MAX_SIZE, "too large")])
def test_a_volume_size_below_1_mib_or_beyond_the_largest_is_refused(size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        volume_size(size)
