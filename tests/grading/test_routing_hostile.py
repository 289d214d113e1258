"""Sorting rules and item lines from hostile input (issue 23): alias bombs, huge format widths, huge
values in error messages, oversized files, bytes that are not UTF-8 — refused with a clear error,
never a runaway in time, memory or message size."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlens.grading.item import empty_item
from fashionlens.grading.routing import (
    MAX_CONDITION_DEPTH,
    MAX_FORMAT_WIDTH,
    MAX_LISTED_PROBLEMS,
    MAX_PROBLEMS,
    MAX_REASON_CHARS,
    MAX_TEMPLATE_CHARS,
    OverlongLine,
    RuleEvaluationError,
    RulesError,
    load_rules,
    read_item_lines,
    route_lines,
    validate_rules,
)

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{k}: &{k} [" + ",".join([f"*{chr(ord(k) - 1)}"] * 9) + "]" for k in "bcdefghi"]
    + ["name: bomb", "version: 1", "rules: *i", "default: {route: reuse, reason: ok}"]) + "\n"


def _rules(reason: str = "hole {damage.area_share.hole:.0%}", **rule: Any) -> dict[str, Any]:
    return {"name": "t", "version": 1,
            "rules": [{"name": "r1", "route": "recycle", "when": {"damage.area_share.hole": {">=": 0.03}},
                       "reason": reason, **rule}],
            "default": {"route": "reuse", "reason": "ok"}}


def _item(**fields: Any) -> dict[str, Any]:
    rec = empty_item("it-1", [{"role": "front", "path": "front.jpg", "error": None}])
    rec["damage"]["area_share"]["hole"] = 0.05
    rec.update(fields)
    return rec


# --- rules files -----------------------------------------------------------------------------------
def test_alias_bomb_rules_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    assert len(BILLION_LAUGHS.encode()) < 700
    with pytest.raises(RulesError, match=r"line 1: YAML anchors are not allowed; got anchor &a") as info:
        load_rules(path)
    assert info.value.source == str(path)
    assert len(str(info.value)) < 400


def test_alias_bomb_through_the_route_command_is_the_rules_error(tmp_path: Path) -> None:
    from fashionlens.cli.sorting import register as register_route

    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    parser = argparse.ArgumentParser(prog="fashionlens")
    register_route(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["route", "--check", "--rules", str(path)])
    with pytest.raises(RulesError, match="YAML anchors are not allowed"):  # the CLI prints it and exits 2
        args.func(args)


def test_rules_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(yaml.safe_dump(_rules()).encode() + b"#" + b"x" * 1_000_000 + b"\n")
    with pytest.raises(RulesError, match=r"over 1,000,000 bytes; expected at most 1,000,000"):
        load_rules(path)


def test_rules_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(_rules()).encode().replace(b"name: t", b"name: caf\xe9"))
    with pytest.raises(RulesError, match=r"line \d+: not UTF-8 text: byte b'\\xe9'"):
        load_rules(path)


# --- format widths and reasons ------------------------------------------------------------------------
@pytest.mark.parametrize("reason, message", [
    ("{category.id:>200000000}", (r"rules\[0\] 'r1': reason: bad format '>200000000' for \{category.id\}: "
                                  r"width 200000000 is too large; expected at most 100")),
    ("{damage.area_share.hole:.999999999f}", r"precision 999999999 is too large"),
    ("{damage.area_share.hole:0101}", r"width 101 is too large"),
    ("{brand:x<" + "9" * 400 + "}", r"width 999999999\.\.\. is too large"),
    ("{brand!z}", r"unknown conversion !z for \{brand\}"),
])
def test_huge_format_widths_are_refused_naming_the_rule(reason: str, message: str) -> None:
    with pytest.raises(RulesError, match=message) as info:
        validate_rules(_rules(reason))
    assert len(str(info.value)) < 600


def test_width_at_the_bound_is_accepted_and_rendered() -> None:
    width = MAX_FORMAT_WIDTH
    rules = validate_rules(_rules(f"{{category.id:>{width}}}|{{damage.area_share.hole:.{width}f}}"))
    reason = rules.route(_item(category={"id": "jeans"}))["reasons"][0]
    assert reason.startswith(" " * (MAX_FORMAT_WIDTH - 5) + "jeans|0.05")


def test_a_huge_width_rules_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(_rules("{category.id:>200000000}")), encoding="utf-8")
    with pytest.raises(RulesError, match="width 200000000 is too large"):
        load_rules(path)


def test_overlong_reason_template_is_refused() -> None:
    with pytest.raises(RulesError, match=rf"reason: expected a text of at most {MAX_TEMPLATE_CHARS} characters; "
                                         r"got 10,000 characters") as info:
        validate_rules(_rules("x" * 10_000))
    assert len(str(info.value)) < 400


def test_rendered_reason_is_cut_to_the_bound() -> None:
    rules = validate_rules(_rules("{brand} {brand} {attributes}"))
    reason = rules.route(_item(brand="b" * 100_000, attributes={"material": list(range(10_000))}))["reasons"][0]
    assert len(reason) == MAX_REASON_CHARS and reason.endswith("...")


# --- long values in messages --------------------------------------------------------------------------
@pytest.mark.parametrize("edit", [
    lambda d: d.update(name=["x" * 1_000_000]),
    lambda d: d.update(strategy="s" * 1_000_000),
    lambda d: d.update(severity=["r" * 1_000_000]),
    lambda d: d["rules"][0].update(route="z" * 1_000_000),
    lambda d: d["rules"][0].update(name="n" * 1_000_000, route="bin"),
    lambda d: d["rules"][0]["when"].update({"k" * 1_000_000: 1}),
    lambda d: d["rules"][0]["when"].update({"brand": {"in": ["v" * 1_000_000, ["nested"]]}}),
    lambda d: d["default"].update(route=list(range(1_000_000))),
    lambda d: d.update(description={"d": "x" * 1_000_000}),
])
def test_long_values_are_cut_in_messages(edit) -> None:
    data = _rules()
    edit(data)
    with pytest.raises(RulesError) as info:
        validate_rules(data)
    assert len(str(info.value)) < 1000
    assert all(len(p) < 600 for p in info.value.problems)


def test_shared_reference_bomb_given_as_data_is_reported_briefly() -> None:
    bomb: Any = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9
    with pytest.raises(RulesError) as info:
        validate_rules({**_rules(), "rules": bomb, "severity": bomb, "define": bomb})
    assert all(len(p) < 400 for p in info.value.problems)
    assert len(str(info.value)) < 5000


def test_many_problems_are_listed_up_to_the_bound() -> None:
    data = _rules()
    data["rules"] = [{"name": f"r{i}", "route": "bin", "when": {"brand": "x"}, "reason": "x"} for i in range(300)]
    with pytest.raises(RulesError) as info:
        validate_rules(data)
    assert len(info.value.problems) == 300
    text = str(info.value)
    assert text.startswith("<rules>: 300 problems in the sorting rules:")
    assert text.count("\n  - ") == MAX_LISTED_PROBLEMS
    assert text.endswith(f"... and {300 - MAX_LISTED_PROBLEMS} more")


def test_checking_stops_after_the_problem_bound() -> None:
    data = _rules()
    data["rules"] = [{"name": f"r{i}", "route": "recylce", "reason": "{categry.id:>999}",
                      "when": {"damage.area_share.holes": {"=>": 1}, "any": [{"use": "wol"}, {"brnad": "x"}]}}
                     for i in range(20_000)]
    with pytest.raises(RulesError) as info:
        validate_rules(data)
    problems = info.value.problems
    assert MAX_PROBLEMS < len(problems) < MAX_PROBLEMS + 10
    assert problems[-1] == f"stopped checking after {MAX_PROBLEMS} problems; fix these and check again"


def test_deeply_nested_or_chained_conditions_are_refused() -> None:
    when: dict[str, Any] = {"brand": "x"}
    for _ in range(MAX_CONDITION_DEPTH + 5):
        when = {"not": when}
    with pytest.raises(RulesError, match=f"conditions nest deeper than {MAX_CONDITION_DEPTH} levels"):
        validate_rules({**_rules(), "rules": [{"name": "r", "route": "reuse", "when": when, "reason": "x"}]})
    chain = {f"d{i}": {"use": f"d{i + 1}"} for i in range(2000)}
    chain["d2000"] = {"brand": "x"}
    with pytest.raises(RulesError, match="nest deeper than"):
        validate_rules({**_rules(), "define": chain})


# --- item lines -------------------------------------------------------------------------------------
def test_item_line_that_is_not_utf8_is_an_error_record_for_that_line(tmp_path: Path) -> None:
    rules = validate_rules(_rules())
    good = json.dumps(_item()).encode()
    data = good + b"\n" + good.replace(b'"front.jpg"', b'"fr\xffnt.jpg"') + b"\n" + b"[" * 100_000 + b"\n" + good
    out = list(route_lines(read_item_lines(io.BytesIO(data)), rules))
    assert [r["route"]["decision"] if r["route"] else None for r in out] == ["recycle", None, None, "recycle"]
    assert out[1]["error"].startswith("line 2: not UTF-8 text: byte b'\\xff' at column")
    assert out[2]["error"].startswith("line 3: not JSON")


def test_overlong_item_lines_are_skipped_without_being_held() -> None:
    data = b"a" * 1000 + b"\n" + b"b" * 50 + b"\n" + b"c" * 2000
    lines = list(read_item_lines(io.BytesIO(data), max_line_bytes=100))
    assert lines == [OverlongLine(1001, 100), b"b" * 50 + b"\n", OverlongLine(2000, 100)]
    out = list(route_lines(lines, validate_rules(_rules())))
    assert out[0]["error"] == "line 1: expected an item record of at most 100 bytes; got a line of 1,001 bytes"
    assert out[1]["error"].startswith("line 2: not JSON")
    assert out[2]["error"].startswith("line 3: expected an item record")


def test_route_command_reads_bytes_line_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fashionlens.cli.sorting import register as register_route

    items = tmp_path / "items.jsonl"
    good = json.dumps(_item()).encode()
    items.write_bytes(good + b"\n\xff\xfe\n" + good + b"\n")
    parser = argparse.ArgumentParser(prog="fashionlens")
    register_route(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["route", str(items)])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["route"] is None for r in rows] == [False, True, False]
    assert rows[1]["error"].startswith("line 2: not UTF-8 text")
    assert "1 failed" in captured.err


# --- random input -----------------------------------------------------------------------------------
_RULE_PIECES = st.sampled_from([
    "name: t\n", "version: 1\n", "rules:\n", "  - name: r\n", "    route: recycle\n", "    route: [a]\n",
    "    when: {damage.area_share.hole: {at_least: 0.03}}\n", "    when: {any: [{brand: x}, {not: {use: w}}]}\n",
    '    reason: "{damage.area_share.hole:.0%}"\n', '    reason: "{brand:>999999}"\n', '    reason: "{x!q}"\n',
    "default: {route: reuse, reason: ok}\n", "define: {w: {composition.fibres.wool: {'>=': 80}}}\n",
    "strategy: most_severe\n", "severity: [recycle, export, repair, reuse]\n", "&a ", "*a", "[", "{", ": ", "- ",
    "\t", "!!binary x\n", "2001-02-30\n", "'", '"', "\xff", "\x00", "é", "    ", "\n",
])


@settings(max_examples=50, deadline=None)
@given(st.lists(_RULE_PIECES, max_size=30))
def test_random_rules_text_gives_rules_or_a_rules_error(tmp_path_factory: pytest.TempPathFactory,
                                                          pieces: list[str]) -> None:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_bytes("".join(pieces).encode().replace(b"\xc3\xbf", b"\xff"))  # a raw 0xff byte
    try:
        load_rules(path)
    except RulesError:
        pass


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=4),
                     max_leaves=20)
_KEYS = st.sampled_from(["name", "version", "rules", "default", "define", "strategy", "severity", "route", "when",
                         "reason", "any", "all", "not", "use", "brand", "damage.area_share.hole", ">=", "in",
                         "exists", "description"])
_RULE_DATA = st.recursive(_JSON, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
                          max_leaves=30)


@settings(max_examples=50, deadline=None)
@given(_RULE_DATA)
def test_random_rules_data_gives_rules_or_a_rules_error(data: Any) -> None:
    try:
        rules = validate_rules(data)
    except RulesError:
        return
    try:
        rules.route(_item())  # a valid random rule set routes an item ...
    except RuleEvaluationError:
        pass  # ... or says which comparison the record cannot satisfy


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=5))
def test_random_item_lines_give_error_records_not_exceptions(lines: list[bytes]) -> None:
    rules = validate_rules(_rules())
    out = list(route_lines(read_item_lines(io.BytesIO(b"\n".join(lines))), rules))
    assert all(r["route"] is not None or r["error"] for r in out)
