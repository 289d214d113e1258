"""The bounded YAML loader (issue 23): no anchors/aliases, size and depth limits, one error type."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlens.io import safe_yaml
from fashionlens.io.safe_yaml import (
    MAX_QUOTE_CHARS,
    YamlInputError,
    load_yaml,
    load_yaml_file,
    short_repr,
)

# 644 bytes that expand to 9**9 (387 million) strings once anything walks the result
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{k}: &{k} [" + ",".join([f"*{chr(ord(k) - 1)}"] * 9) + "]" for k in "bcdefghi"]
    + ["rules: *i"]) + "\n"


def test_plain_yaml_loads_as_safe_load_would() -> None:
    assert load_yaml("a: 1\nb: [x, 2.5, true, null]\nc: {d: e}\n") == {
        "a": 1, "b": ["x", 2.5, True, None], "c": {"d": "e"}}
    assert load_yaml("") is None
    assert load_yaml(b"name: caf\xc3\xa9\n") == {"name": "café"}


def test_billion_laughs_is_refused_naming_the_anchor_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    with pytest.raises(YamlInputError, match=r"bomb\.yaml:1: YAML anchors are not allowed; got anchor &a") as info:
        load_yaml_file(path)
    assert info.value.line == 1 and info.value.source == str(path)
    assert len(str(info.value)) < 400


def test_an_alias_alone_is_refused() -> None:
    with pytest.raises(YamlInputError, match=r"<yaml>:2: YAML aliases are not allowed; got alias \*x"):
        load_yaml("a: 1\nb: *x\n")


def test_size_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(YamlInputError, match="expected at most 100"):
        load_yaml("a: " + "x" * 200, max_bytes=100)
    with pytest.raises(YamlInputError, match="expected at most 100"):
        load_yaml(b"a: " + b"x" * 200, max_bytes=100)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * 5000 + b"\n")
    with pytest.raises(YamlInputError, match=r"big\.yaml: YAML file is over 1,000 bytes; expected at most 1,000"):
        load_yaml_file(big, max_bytes=1000)
    # multi-byte characters count as bytes, not characters
    with pytest.raises(YamlInputError, match="expected at most 10"):
        load_yaml("a: éééééé", max_bytes=10)


def test_deep_nesting_is_refused() -> None:
    assert load_yaml("[" * 10 + "]" * 10, max_depth=10) == [[[[[[[[[[]]]]]]]]]]
    with pytest.raises(YamlInputError, match="nested deeper than 10 levels"):
        load_yaml("[" * 11 + "]" * 11, max_depth=10)
    with pytest.raises(YamlInputError, match="nested deeper than 64 levels"):
        load_yaml("[" * 65 + "]" * 65)
    with pytest.raises(YamlInputError, match="nested deeper than 64 levels"):
        load_yaml("- " * 65 + "x\n")
    with pytest.raises(YamlInputError):
        load_yaml("[" * 100_000)


def test_documents_with_too_many_values_are_refused() -> None:
    assert len(load_yaml("[" + ",".join(["1"] * 99) + "]", max_nodes=100)) == 99
    with pytest.raises(YamlInputError, match="YAML document has over 100 values"):
        load_yaml("[" + ",".join(["1"] * 100) + "]", max_nodes=100)
    with pytest.raises(YamlInputError, match="over 50,000 values"):
        load_yaml("[" + ",".join(["{a: 1}"] * 30_000) + "]")


def test_the_pure_python_loader_is_bounded_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safe_yaml, "_Loader", safe_yaml._PureLoader)
    assert load_yaml("a: [1, {b: 2.5}]\nc: 2001-02-03\n") == {"a": [1, {"b": 2.5}], "c": __import__("datetime").date(
        2001, 2, 3)}
    with pytest.raises(YamlInputError, match="YAML anchors are not allowed"):
        load_yaml(BILLION_LAUGHS)
    with pytest.raises(YamlInputError, match="a number written with"):
        load_yaml("a: 1" + ":1" * 100)
    with pytest.raises(YamlInputError, match="nested deeper than 3 levels"):
        load_yaml("[[[[1]]]]", max_depth=3)


def test_bytes_that_are_not_utf8_name_the_line() -> None:
    with pytest.raises(YamlInputError, match=r"<yaml>:3: not UTF-8 text: byte b'\\xff'") as info:
        load_yaml(b"a: 1\nb: 2\nc: \xff\n")
    assert info.value.line == 3


@pytest.mark.parametrize("text, message", [
    ("a: [1, 2", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "expected a single document"),
    ("a: 2001-13-45", "month must be in 1..12"),
    ("a: " + "1" * 5000, "a number written with 5,000 characters; expected at most 100"),
    ("a: 1" + ":1" * 400_000, "a number written with 800,001 characters"),  # base 60: quadratic to convert
    ("a: 1.5" + "0" * 200, "a number written with 203 characters"),
    ("a: !!python/object/apply:os.system [ls]", "could not determine a constructor"),
    ("{[a]: 1}", "unhashable key"),
    ("\x01", "control characters are not allowed"),
    ("a: !!int", "IndexError"),  # PyYAML's own constructors raise more than YAMLError
    ("a: !!bool ", "KeyError"),
    ("a: !!timestamp x", "AttributeError"),
])
def test_every_failure_is_a_yaml_input_error(text: str, message: str) -> None:
    with pytest.raises(YamlInputError, match=message) as info:
        load_yaml(text)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) <= 400


def test_long_values_are_cut_in_error_messages() -> None:
    with pytest.raises(YamlInputError) as info:
        load_yaml("key: [" + "x" * 100_000)
    assert len(str(info.value)) <= 400


def test_short_repr_is_bounded_even_for_shared_structures() -> None:
    bomb: list = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9  # 9**9 strings by reference, a few hundred objects
    assert len(short_repr(bomb)) <= MAX_QUOTE_CHARS
    assert len(short_repr("x" * 10**6)) == MAX_QUOTE_CHARS
    assert "..." in short_repr("x" * 10**6)
    assert short_repr({"a": 1}) == "{'a': 1}"
    assert len(short_repr("y" * 500, 50)) == 50


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_random_text_gives_data_or_a_yaml_input_error(text: str) -> None:
    try:
        load_yaml(text, max_bytes=200)
    except YamlInputError:
        pass


_YAML_PIECES = st.sampled_from(["a", ":", " ", "\n", "- ", "[", "]", "{", "}", ",", "&x ", "*x", "!!int ", "!!binary ",
                                "'", '"', "#", "? ", "|", ">", "2001-02-30", "1e999", "0x", "<<: ", "---\n", "\t",
                                "%YAML 1.1\n", "!!python/name:os.system", "\\", "\x00", "é", "!!bool ",
                                "!!timestamp ", "!!float ", "!!set ", "!!omap ", "!!pairs "])


@settings(max_examples=50, deadline=None)
@given(st.lists(_YAML_PIECES, max_size=40))
def test_random_yaml_like_text_gives_data_or_a_yaml_input_error(pieces: list[str]) -> None:
    try:
        load_yaml("".join(pieces))
    except YamlInputError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_data_or_a_yaml_input_error(data: bytes) -> None:
    try:
        load_yaml(data)
    except YamlInputError:
        pass
