"""Sorting rules: the default rules on hand-made item records, conflict resolution, missing values,
operators, every validation error, and the ``route`` command."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fashionlens.grading.item import ITEM_SCHEMA, ROUTES, empty_item
from fashionlens.grading.routing import (
    MISSING,
    RuleEvaluationError,
    RulesError,
    load_rules,
    resolve_path,
    route_lines,
    validate_rules,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sorting_rules.md"


def item(*, hole: float = 0.0, stain: float = 0.0, pilling: float = 0.0, fading: float = 0.0, n_stains: int = 0,
         fibres: dict[str, float] | None = None, condition: Any = None) -> dict[str, Any]:
    """An item record with the given damage shares, stain regions, care-label fibres and condition grade."""
    rec = empty_item("it-1", [{"role": "front", "path": "front.jpg", "error": None}])
    rec["damage"]["area_share"].update(hole=hole, stain=stain, pilling=pilling, fading=fading)
    rec["damage"]["regions"] = [{"view": "front", "type": "stain", "area_share": stain / max(n_stains, 1),
                                 "score": 0.9, "bbox": [0, 0, 4, 4], "mask": None} for _ in range(n_stains)]
    rec["damage"]["any"] = bool(hole or stain or pilling or fading or n_stains)
    if fibres is not None:
        ordered = sorted(fibres.items(), key=lambda kv: -kv[1])
        rec["composition"] = {"text": ", ".join(f"{p:g}% {f}" for f, p in ordered),
                              "fibres": [{"fibre": f, "percent": p} for f, p in ordered],
                              "main_fibre": ordered[0][0] if ordered else None}
    if condition is not None:
        rec["grades"]["condition"] = {"id": condition, "score": 0.8}
    return rec


# (deciding rule, record, route, first reason) — every default rule at least once
DEFAULT_CASES = [
    ("very-poor-condition", item(condition=1, hole=0.01), "recycle", "condition grade 1 of 5: not wearable"),
    ("hole-in-high-value-fibre", item(hole=0.05, fibres={"wool": 90, "polyamide": 10}), "repair",
     "hole covering 5.0% of the garment, but wool is a high-value fibre: worth repairing"),
    ("large-hole", item(hole=0.05), "recycle", "hole covering 5.0% of the garment: too large to repair"),
    ("large-hole", item(hole=0.12, fibres={"cashmere": 100}), "recycle",
     "hole covering 12.0% of the garment: too large to repair"),
    ("heavy-staining", item(stain=0.10, n_stains=2), "recycle", "stains cover 10.0% of the garment (2 stains)"),
    ("heavy-staining", item(stain=0.012, n_stains=6), "recycle", "stains cover 1.2% of the garment (6 stains)"),
    ("heavy-pilling", item(pilling=0.4), "recycle", "pilling over 40% of the garment"),
    ("small-hole", item(hole=0.01), "repair", "small hole covering 1.0% of the garment: mend it"),
    ("stains-on-high-value-fibre", item(stain=0.03, n_stains=1, fibres={"silk": 60, "polyester": 40}), "repair",
     "stains cover 3.0% of a silk garment: worth cleaning"),
    ("stained", item(stain=0.03, n_stains=1), "export", "stains cover 3.0% of the garment (1 stains)"),
    ("stained", item(stain=0.005, n_stains=3), "export", "stains cover 0.5% of the garment (3 stains)"),
    ("pilled", item(pilling=0.15), "export", "pilling over 15% of the garment"),
    ("poor-condition", item(condition=2), "export", "condition grade 2 of 5"),
    ("poor-condition", item(condition="2"), "export", "condition grade 2 of 5"),
    ("faded", item(fading=0.3), "export", "faded over 30% of the garment"),
    ("wool-rich", item(fibres={"wool": 80, "polyamide": 20}), "reuse", "wool 80%: high-value fibre"),
    ("cashmere", item(fibres={"cashmere": 30, "wool": 70}), "reuse", "cashmere 30%: high-value fibre"),
    ("silk", item(fibres={"silk": 100}), "reuse", "silk 100%: high-value fibre"),
    ("alpaca", item(fibres={"alpaca": 50, "acrylic": 50}), "reuse", "alpaca 50%: high-value fibre"),
    (None, item(), "reuse", "no damage or low grade over a rule's threshold: fit for reuse"),
    (None, item(hole=0.0019, stain=0.019, n_stains=2, pilling=0.09, fading=0.2, condition=3,
                fibres={"wool": 79, "cashmere": 21}), "reuse", "no damage or low grade over a rule's threshold: fit for reuse"),
]


@pytest.fixture(scope="module")
def default_rules():
    return load_rules()


@pytest.mark.parametrize(("rule", "record", "route", "reason"), DEFAULT_CASES,
                         ids=[f"{c[0] or 'default'}-{i}" for i, c in enumerate(DEFAULT_CASES)])
def test_default_rules_decide_with_their_reason(default_rules, rule, record, route, reason):
    matched = default_rules.matches(record)
    assert (matched[0].name if matched else None) == rule
    out = default_rules.route(record)
    assert out == {"decision": route, "reasons": out["reasons"], "rules": "fashionlens-default/1"}
    assert out["reasons"][0] == reason


def test_every_default_rule_is_covered_and_documented(default_rules):
    names = [r.name for r in default_rules.rules]
    assert sorted(set(names)) == sorted({c[0] for c in DEFAULT_CASES if c[0]})
    assert {r.route for r in default_rules.rules} == set(ROUTES)
    text = DOCS.read_text(encoding="utf-8")
    assert [n for n in names if f"`{n}`" not in text] == []


def test_default_rules_route_every_empty_item_without_crashing(default_rules):
    bare = {"schema": ITEM_SCHEMA, "item_id": "x"}  # nothing else: no damage, composition, grades
    assert default_rules.route(bare)["decision"] == "reuse"
    assert default_rules.route({})["decision"] == "reuse"


# --- conflicts --------------------------------------------------------------------------------------
def test_first_match_decides_and_every_match_is_listed(default_rules):
    out = default_rules.route(item(hole=0.05, fibres={"wool": 90, "polyamide": 10}))
    assert out["decision"] == "repair"
    assert out["reasons"] == [
        "hole covering 5.0% of the garment, but wool is a high-value fibre: worth repairing",
        "hole covering 5.0% of the garment: too large to repair (rule 'large-hole' suggests recycle)",
        "wool 90%: high-value fibre (rule 'wool-rich' suggests reuse)",
    ]


def _rules(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "t", "version": 1, "rules": list(rules), "default": {"route": "reuse", "reason": "nothing"}, **top}


def _rule(name: str, route: str, when: dict[str, Any] | None = None, reason: str | None = None) -> dict[str, Any]:
    return {"name": name, "route": route, "when": when or {"damage.any": True}, "reason": reason or name}


@pytest.mark.parametrize(("top", "decision", "reasons"), [
    ({}, "reuse", ["a", "b (rule 'b' suggests recycle)", "c (rule 'c' suggests repair)", "d"]),
    ({"strategy": "first_match"}, "reuse", ["a", "b (rule 'b' suggests recycle)", "c (rule 'c' suggests repair)",
                                            "d"]),
    ({"strategy": "most_severe"}, "recycle", ["b", "a (rule 'a' suggests reuse)", "c (rule 'c' suggests repair)",
                                              "d (rule 'd' suggests reuse)"]),
    ({"strategy": "most_severe", "severity": ["reuse", "repair", "export", "recycle"]}, "reuse",
     ["a", "b (rule 'b' suggests recycle)", "c (rule 'c' suggests repair)", "d"]),
    ({"strategy": "most_severe", "severity": ["repair", "recycle", "export", "reuse"]}, "repair",
     ["c", "a (rule 'a' suggests reuse)", "b (rule 'b' suggests recycle)", "d (rule 'd' suggests reuse)"]),
])
def test_conflict_resolution(top, decision, reasons):
    rules = validate_rules(_rules(_rule("a", "reuse"), _rule("b", "recycle"), _rule("c", "repair"),
                                  _rule("d", "reuse"), _rule("never", "export", {"damage.any": False}), **top))
    out = rules.route({"damage": {"any": True}})
    assert out == {"decision": decision, "reasons": reasons, "rules": "t/1"}


def test_most_severe_tie_goes_to_the_earlier_rule():
    rules = validate_rules(_rules(_rule("first", "recycle"), _rule("second", "recycle"), strategy="most_severe"))
    assert rules.route({"damage": {"any": True}})["reasons"] == ["first", "second"]


def test_nothing_matched_gives_the_default():
    rules = validate_rules(_rules(_rule("a", "recycle"), default={"route": "export", "reason": "no {item_id} rule"}))
    assert rules.route({"item_id": "x7", "damage": {"any": False}}) == {
        "decision": "export", "reasons": ["no x7 rule"], "rules": "t/1"}


def test_the_default_says_which_unsure_grades_no_rule_could_use():
    rules = validate_rules(_rules(_rule("a", "recycle"), default={"route": "reuse", "reason": "fit for reuse"}))
    unsure = {"id": None, "score": 0.41, "uncertain": True, "candidates": [{"id": "good", "score": 0.41}]}
    item = {"item_id": "x8", "damage": {"any": False},
            "grades": {"condition": unsure, "usage": dict(unsure), "season": {"id": "all", "score": 0.95}}}
    assert rules.route(item)["reasons"] == [
        "fit for reuse", "unsure, so no rule could use them: condition, usage — a person should check"]
    item["grades"] = {"season": {"id": "all", "score": 0.95}}
    assert rules.route(item)["reasons"] == ["fit for reuse"]


# --- missing values, paths, operators ----------------------------------------------------------------
@pytest.mark.parametrize(("path", "expected"), [
    ("composition.fibres.wool", 60.0),
    ("composition.fibres.silk", 0.0),            # label lists other fibres: 0 %
    ("composition.main_percent", 60.0),
    ("composition.main_fibre", "wool"),
    ("damage.count.stain", 2),
    ("damage.count.hole", 0),
    ("damage.count.any", 2),
    ("damage.area_share.hole", 0.0),
    ("views.0.role", "front"),
    ("views.5.role", MISSING),
    ("grades.condition.id", MISSING),
    ("brand", MISSING),                           # null in the record
    ("no.such.path", MISSING),
    ("item_id.deeper", MISSING),
])
def test_resolve_path(path, expected):
    rec = item(fibres={"wool": 60, "polyamide": 40}, stain=0.02, n_stains=2)
    assert resolve_path(rec, path) == expected if expected is not MISSING else resolve_path(rec, path) is MISSING


@pytest.mark.parametrize("path", ["composition.fibres.wool", "composition.main_percent", "damage.count.stain"])
def test_derived_paths_are_missing_without_their_source(path):
    rec = item()
    rec["composition"] = None
    rec["damage"] = None
    assert resolve_path(rec, path) is MISSING


@pytest.mark.parametrize(("test", "expected"), [
    ({">=": 10}, False), ({"<": 10}, False), ({"==": 0}, False), ({"!=": 5}, False),
    ({"in": [0, 1]}, False), ({"not_in": [5]}, False), ({"exists": True}, False), ({"exists": False}, True),
])
def test_a_condition_on_a_missing_value_is_false(test, expected):
    rules = validate_rules(_rules(_rule("r", "recycle", {"composition.fibres.wool": test})))
    no_label = item()  # composition is None: no label photo
    assert rules.route(no_label)["decision"] == ("recycle" if expected else "reuse")


def test_missing_value_in_a_reason_reads_unknown():
    rules = validate_rules(_rules(_rule("r", "export", {"damage.any": True}, "grade {grades.condition.id}")))
    assert rules.route({"damage": {"any": True}})["reasons"] == ["grade unknown"]


@pytest.mark.parametrize(("test", "value", "expected"), [
    ({">=": 3}, 3, True), ({"at_least": 3}, 2.9, False), ({">": 3}, 3, False), ({"above": 3}, 3.5, True),
    ({"<": 3}, 2, True), ({"below": 3}, 3, False), ({"<=": 3}, 3, True), ({"at_most": 3}, 4, False),
    ({">=": 3}, "4", True),                                  # numeric text counts as a number
    ({"==": "Wool"}, "wool", True), ({"is": "wool"}, "cotton", False), ({"==": 3}, "3", True),
    ({"!=": "wool"}, "WOOL", False), ({"is_not": "wool"}, "silk", True),
    ({"in": ["wool", "silk"]}, "Silk", True), ({"not_in": ["wool", "silk"]}, "silk", False),
    ({"not_in": ["wool"]}, "cotton", True),
    ({"==": True}, True, True), ({"==": True}, 1, False),
    ({"==": "wool"}, ["wool"], False), ({"in": ["wool"]}, {"id": "wool"}, False),   # not scalars
    ({"exists": True}, 0, True), ({"exists": True}, "", True),
    ({">=": 1, "<": 5}, 3, True), ({">=": 1, "<": 5}, 5, False),                    # several operators: all
    ("wool", "wool", True), (["wool", "silk"], "silk", True), (["wool"], "cotton", False),  # shorthands
])
def test_operators(test, value, expected):
    rules = validate_rules(_rules(_rule("r", "recycle", {"brand": test})))
    assert rules.route({"brand": value})["decision"] == ("recycle" if expected else "reuse")


@pytest.mark.parametrize(("when", "record", "expected"), [
    ({"any": [{"brand": "a"}, {"brand": "b"}]}, {"brand": "b"}, True),
    ({"any": [{"brand": "a"}, {"brand": "b"}]}, {"brand": "c"}, False),
    ({"all": [{"brand": "a"}, {"item_id": "1"}]}, {"brand": "a", "item_id": "1"}, True),
    ({"all": [{"brand": "a"}, {"item_id": "1"}]}, {"brand": "a", "item_id": "2"}, False),
    ({"not": {"brand": "a"}}, {"brand": "b"}, True),
    ({"not": {"brand": "a"}}, {}, True),  # not(false on missing)
    ({"use": "is-a"}, {"brand": "a"}, True),
    ({"use": "is-a", "item_id": "1"}, {"brand": "a", "item_id": "2"}, False),
    ({"use": "a-or-b"}, {"brand": "b"}, True),
])
def test_groups_and_named_conditions(when, record, expected):
    rules = validate_rules(_rules(_rule("r", "recycle", when),
                                  define={"is-a": {"brand": "a"}, "a-or-b": {"any": [{"use": "is-a"}, {"brand": "b"}]}}))
    assert rules.route(record)["decision"] == ("recycle" if expected else "reuse")


def test_an_ordered_test_on_a_word_is_an_error_naming_the_rule():
    rules = validate_rules(_rules(_rule("grade-low", "export", {"grades.condition.id": {"<=": 2}})))
    with pytest.raises(RuleEvaluationError, match=r"rule 'grade-low': grades.condition.id <= 2.0 needs a number.*'good'"):
        rules.route({"grades": {"condition": {"id": "good"}}})


@pytest.mark.parametrize(("record", "error"), [
    ([], TypeError), ("text", TypeError), ({"schema": "fashionlens/result/v1"}, ValueError),
])
def test_route_rejects_what_is_not_an_item(default_rules, record, error):
    with pytest.raises(error, match="item record"):
        default_rules.route(record)


def test_reason_formats(default_rules):
    rules = validate_rules(_rules(_rule("r", "export", {"damage.any": True},
                                        "{damage.area_share.stain:.0%} | {damage.area_share.stain} | "
                                        "{brand!r} | {{literal}} | {composition.main_fibre:>6}")))
    rec = item(stain=0.25, n_stains=1, fibres={"wool": 100})
    rec["brand"] = "Acme"
    assert rules.route(rec)["reasons"] == ["25% | 0.25 | 'Acme' | {literal} |   wool"]


# --- validation ---------------------------------------------------------------------------------------
def _valid() -> dict[str, Any]:
    return _rules(_rule("r1", "recycle", {"damage.area_share.hole": {">=": 0.03}}, "hole {damage.area_share.hole:.0%}"),
                  define={"wool": {"composition.fibres.wool": {"at_least": 80}}})


def _set(path: str, value: Any):
    def edit(data: dict[str, Any]) -> dict[str, Any]:
        keys = path.split("/")
        target: Any = data
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return data
    return edit


_DELETE = object()
R = "rules/0"
W = "rules/0/when"

VALIDATION_CASES = [
    (_set("rulez", []), r"top level: unknown key 'rulez'.*did you mean 'rules'\?"),
    (_set("name", _DELETE), r"name: expected a non-empty text"),
    (_set("version", [1]), r"version: expected a number or text"),
    (_set("version", True), r"version: expected a number or text"),
    (_set("description", 3), r"description: expected text"),
    (_set("strategy", "first-match"), r"strategy: expected one of first_match, most_severe.*did you mean 'first_match'"),
    (_set("severity", ["recycle", "export"]), r"severity: expected every route exactly once"),
    (_set("define", ["x"]), r"define: expected a mapping"),
    (_set("rules", {"r1": {}}), r"rules: expected a list of rules"),
    (_set("rules/0", "just text"), r"rules\[0\]: expected a mapping with name, route, when, reason"),
    (_set(f"{R}/resaon", "x"), r"rules\[0\] 'r1': unknown key 'resaon'.*did you mean 'reason'\?"),
    (_set(f"{R}/when", _DELETE), r"rules\[0\] 'r1': missing when"),
    (_set(f"{R}/name", ""), r"rules\[0\]: name: expected a non-empty text"),
    (lambda d: {**d, "rules": d["rules"] * 2}, r"rules\[1\] 'r1': name 'r1' is already used by rules\[0\]"),
    (_set(f"{R}/route", "recylce"), r"rules\[0\] 'r1': route: unknown route 'recylce'.*did you mean 'recycle'\?"),
    (_set(W, {"damage.area_share.hole": {"=>": 0.03}}),
     r"'r1': when.damage.area_share.hole: unknown operator '=>'; expected one of .*did you mean '>='\?"),
    (_set(W, {"damage.area_share.hole": {"atleast": 0.03}}), r"unknown operator 'atleast'.*did you mean 'at_least'\?"),
    (_set(W, {"damage..hole": {">=": 0.03}}), r"when.damage..hole: expected a dotted path"),
    (_set(W, {"damage.area_share hole": 1}), r"expected a dotted path"),
    (_set(W, {"damages.area_share.hole": {">=": 0.03}}), r"unknown record field 'damages'.*did you mean 'damage'\?"),
    (_set(W, {"damage.area_share.holes": {">=": 0.03}}), r"unknown damage type 'holes'.*did you mean 'hole'\?"),
    (_set(W, {"damage.count.stains": {">=": 3}}), r"unknown damage type 'stains'.*did you mean 'stain'\?"),
    (_set(W, {"composition.fibres.wol": {">=": 80}}), r"unknown fibre 'wol'.*did you mean 'wool'\?"),
    (_set(W, {"damage.area_share.hole": {">=": "3%"}}), r"operator '>=' expects a number; got '3%' \(str\)"),
    (_set(W, {"damage.area_share.hole": {"at_least": True}}), r"operator 'at_least' expects a number; got True"),
    (_set(W, {"brand": {"in": "acme"}}), r"operator 'in' expects a non-empty list"),
    (_set(W, {"brand": {"not_in": []}}), r"operator 'not_in' expects a non-empty list"),
    (_set(W, {"brand": {"in": [["a"]]}}), r"operator 'in' expects a non-empty list"),
    (_set(W, {"brand": {"exists": "yes"}}), r"operator 'exists' expects true or false"),
    (_set(W, {"brand": {"==": None}}), r"operator '==' expects .*exists: false"),
    (_set(W, {"brand": None}), r"operator '==' expects .*exists: false"),
    (_set(W, {"brand": {"==": {"a": 1}}}), r"operator '==' expects a number, word or true/false"),
    (_set(W, {"brand": {}}), r"when.brand: expected at least one operator"),
    (_set(W, {}), r"when: expected a mapping of conditions"),
    (_set(W, [{"brand": "a"}]), r"when: expected a mapping of conditions"),
    (_set(W, {"all": []}), r"when.all: expected a non-empty list of conditions"),
    (_set(W, {"any": {"brand": "a"}}), r"when.any: expected a non-empty list of conditions"),
    (_set(W, {"any": ["brand"]}), r"when.any\[0\]: expected a mapping of conditions"),
    (_set(W, {"ANY": [{"brand": "a"}]}), r"group keys are lower case"),
    (_set(W, {"use": "wol"}), r"unknown named condition 'wol'.*\(wool\).*did you mean 'wool'\?"),
    (_set("define", {"a": {"use": "b"}, "b": {"use": "a"}}), r"define 'a': refers to itself \(a → b → a\)"),
    (_set("define", {"a": {"brand": {"is": None}}}), r"define 'a'.brand: operator 'is' expects"),
    (_set(f"{R}/reason", "hole {damage.area_share.hole"), r"reason: bad template .*expected '}'"),
    (_set(f"{R}/reason", "hole {damage.area_share.holes:.0%}"), r"reason \{damage.area_share.holes\}: unknown damage type"),
    (_set(f"{R}/reason", "hole {damage.area_share.hole:.0Q}"), r"reason: bad format '.0Q'"),
    (_set(f"{R}/reason", "hole {}"), r"reason: template field \{\} must be a dotted path"),
    (_set(f"{R}/reason", "hole {0}"), r"reason \{0\}: expected a dotted path"),
    (_set(f"{R}/reason", "{views[0]}"), r"must be a dotted path"),
    (_set(f"{R}/reason", "{brand:{width}}"), r"nested fields"),
    (_set(f"{R}/reason", ""), r"reason: expected a non-empty text"),
    (_set(f"{R}/reason", 5), r"reason: expected a non-empty text"),
    (_set("default", _DELETE), r"default: expected a mapping with route and reason"),
    (_set("default/route", "keep"), r"default: route: unknown route 'keep'"),
    (_set("default/reson", "x"), r"default: unknown key 'reson'.*did you mean 'reason'\?"),
    (_set("default/reason", "{item_idd}"), r"default: reason \{item_idd\}: unknown record field.*did you mean 'item_id'"),
]


@pytest.mark.parametrize(("edit", "message"), VALIDATION_CASES, ids=[m[:40] for _, m in VALIDATION_CASES])
def test_validation_errors(edit, message):
    assert validate_rules(_valid()).route(item(hole=0.05))["decision"] == "recycle"  # the base is valid
    with pytest.raises(RulesError, match=message):
        validate_rules(edit(copy.deepcopy(_valid())))


@pytest.mark.parametrize("data", [None, [], "rules"])
def test_validation_of_a_non_mapping(data):
    with pytest.raises(RulesError, match="expected a mapping with keys name, version"):
        validate_rules(data)


def test_validation_reports_every_problem_at_once():
    data = _valid()
    data["strategy"] = "first"
    data["rules"][0]["route"] = "bin"
    data["rules"][0]["when"] = {"damage.area_share.hole": {"=>": 1}, "colour": "red"}
    with pytest.raises(RulesError) as info:
        validate_rules(data, source="facility.yaml")
    assert len(info.value.problems) == 4
    assert str(info.value).startswith("facility.yaml: 4 problems in the sorting rules:")
    assert isinstance(info.value, ValueError)


# --- files --------------------------------------------------------------------------------------------
def test_load_rules_from_a_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(_valid()), encoding="utf-8")
    rules = load_rules(path)
    assert rules.source == str(path) and rules.label == "t/1"
    assert rules.summary()["rules_per_route"] == {"reuse": 0, "repair": 0, "export": 0, "recycle": 1}


def test_load_rules_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n  - name: x\n    when: {a: 1", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(RulesError, match="expected a mapping"):
        load_rules(empty)


def test_the_docs_example_rules_file_is_valid():
    """The complete example in docs/sorting_rules.md (the first ```yaml block) validates."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = validate_rules(yaml.safe_load(block))
    assert len(rules.rules) >= 2


# --- JSONL and the command ----------------------------------------------------------------------------
def test_route_lines_keeps_going_after_bad_rows(default_rules):
    good = item(hole=0.01)
    lines = [json.dumps(good), "", "{not json", json.dumps([1, 2]),
             json.dumps({"item_id": "w", "grades": {"condition": {"id": "good"}}, "error": "label photo unreadable"}),
             json.dumps({"schema": "other/v1", "item_id": "o"}), json.dumps(item())]
    out = list(route_lines(lines, default_rules))
    assert len(out) == 6
    assert out[0]["route"]["decision"] == "repair" and out[0]["item_id"] == "it-1" and out[0]["error"] is None
    assert out[1]["route"] is None and out[1]["error"].startswith("line 3: not JSON")
    assert out[2]["error"].startswith("line 4: routing failed: expected an item record")
    assert out[3]["item_id"] == "w" and out[3]["error"].startswith("label photo unreadable; line 5: routing failed")
    assert out[4]["route"] is None and "schema" in out[4]["error"]
    assert out[5]["route"]["decision"] == "reuse"
    assert list(route_lines([], default_rules)) == []


def _run(argv: list[str]) -> int:
    from fashionlens.cli.sorting import register as register_route

    parser = argparse.ArgumentParser(prog="fashionlens")
    register_route(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_route_command(tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join([json.dumps(item(stain=0.1, n_stains=1)), "oops", json.dumps(item())]) + "\n",
                     encoding="utf-8")
    assert _run(["route", str(items)]) == 1  # one bad row
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["route"]["decision"] if r["route"] else None for r in rows] == ["recycle", None, "reuse"]
    assert "routed 2 items with fashionlens-default/1 (recycle 1, reuse 1); 1 failed" in captured.err

    out = tmp_path / "routed.jsonl"
    items.write_text(json.dumps(item(hole=0.01)) + "\n", encoding="utf-8")
    assert _run(["route", str(items), "--output", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["route"]["decision"] == "repair"


def test_route_command_with_rules_and_check(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_valid()), encoding="utf-8")
    assert _run(["route", "--check", "--rules", str(rules)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rules"] == "t/1" and summary["n_rules"] == 1 and summary["rule_names"] == ["r1"]
    assert _run(["route", "--check"]) == 0
    assert json.loads(capsys.readouterr().out)["n_rules"] == len(load_rules().rules)

    data = _valid()
    data["rules"][0]["route"] = "bin"
    rules.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(RulesError, match="unknown route 'bin'"):
        _run(["route", "--check", "--rules", str(rules)])
    with pytest.raises(ValueError, match="expected an ITEMS.jsonl"):
        _run(["route"])
