"""Annotator agreement (``evaluate/agreement.py``, ``cli_agreement.py``) on small generated CSVs with
hand-computed kappas and Krippendorff's published example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from fashionlens.evaluate import agreement as ag
from fashionlens.evaluate.agreement import (
    AgreementInputError,
    agreement_report,
    annotation_table,
    model_table,
    model_value,
    normalise_value,
    plot_agreement,
    read_annotations,
    read_model_predictions,
)


def _csv(path: Path, rows: list[list[Any]], header: list[str], sep: str = ",") -> Path:
    lines = [sep.join(header)] + [sep.join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _table(ids: list[Any], **fields: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"item_id": ids, **fields})


def _record(item_id: str, **grades: Any) -> dict[str, Any]:
    from fashionlens.grading.item import empty_item

    rec = empty_item(item_id, [])
    rec["grades"] = {k: {"id": v, "score": 0.9} for k, v in grades.items()}
    return rec


# --- values and readers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("3", "3"), ("3.0", "3"), (3, "3"), (3.0, "3"), (" 3.00 ", "3"), ("2.50", "2.5"), ("-1", "-1"),
    ("  Good  Condition ", "good condition"), ("YES", "yes"), (True, "true"), (np.int64(4), "4"),
    ("", None), ("  ", None), ("NaN", None), ("n/a", None), (None, None), (float("nan"), None),
    ("none", "none"), ("100-200", "100-200"), ("inf", "inf"),
])
def test_normalise_value(value: Any, expected: str | None) -> None:
    assert normalise_value(value) == expected


def test_normalise_value_rejects_lists() -> None:
    with pytest.raises(AgreementInputError, match="single value"):
        normalise_value(["red", "blue"])


def test_read_annotations_accepts_id_column_semicolons_bom_and_messy_headers(tmp_path: Path) -> None:
    p = tmp_path / "b.csv"
    p.write_text("\ufeffid; Condition ;Stains\n7;3.0; Yes \n8;;no\n", encoding="utf-8")
    t = read_annotations(p)
    assert list(t.index) == ["7", "8"] and list(t.columns) == ["condition", "stains"]
    assert t.loc["7"].tolist() == ["3", "yes"] and t.loc["8", "condition"] is None


@pytest.mark.parametrize(("frame", "match"), [
    (pd.DataFrame({"item": [1, 2], "condition": [3, 4]}), "expected an id column"),
    (pd.DataFrame({"item_id": ["a", "b", "a"], "condition": [3, 4, 5]}), "duplicated: 'a'"),
    (pd.DataFrame({"item_id": ["a", None], "condition": [3, 4]}), "rows 3 have none"),
    (pd.DataFrame({"item_id": ["a"], "Condition": [3], "condition ": [4]}), "unique column names"),
])
def test_annotation_table_rejects_bad_tables(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(AgreementInputError, match=match):
        annotation_table(frame, name="x.csv")


def test_annotation_table_uses_an_id_index_and_numeric_ids() -> None:
    t = annotation_table(pd.DataFrame({"condition": [1, 2]}, index=pd.Index([1.0, 2.0], name="id")))
    assert list(t.index) == ["1", "2"] and t["condition"].tolist() == ["1", "2"]


def test_model_value_lookup_order() -> None:
    rec = _record("a", condition=4)
    rec["attributes"] = {"material": {"id": "wool", "score": None, "source": "label"}, "condition": {"id": 1},
                         "colours": [{"id": "red", "share": 1.0, "score": 0.9}]}
    rec["category"] = {"id": "sweaters", "score": 0.8}
    rec["object_type"] = "upper-body"
    rec["route"] = {"decision": "reuse", "reasons": [], "rules": "default"}
    assert model_value(rec, "condition") == 4  # grades win over attributes
    assert model_value(rec, "material") == "wool"
    assert model_value(rec, "category") == "sweaters"
    assert model_value(rec, "object_type") == "upper-body"
    assert model_value(rec, "route") == "reuse"
    assert model_value(rec, "price") is None and model_value(rec, "colours") is None
    t = model_table([rec])
    assert t.loc["a", "condition"] == "4" and t.loc["a", "material"] == "wool" and "colours" not in t.columns


@pytest.mark.parametrize(("lines", "match"), [
    (['{"schema": "fashionlens/result/v1", "item_id": "a"}'], "expected schema"),
    (['{"item_id": "a"}', "{not json"], "line 2"),
    (['{"item_id": "a"}', '{"item_id": "a"}'], "'a' repeats"),
    (['{"grades": {}}'], "expected an item_id"),
    (["", "  "], "has none"),
])
def test_read_model_predictions_rejects_bad_files(tmp_path: Path, lines: list[str], match: str) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(AgreementInputError, match=match):
        read_model_predictions(p)


# --- statistics ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["stains", "condition"])
def test_perfect_agreement_gives_kappa_and_alpha_one(field: str) -> None:
    values = ["yes", "no", "yes", "no"] if field == "stains" else [1, 3, 2, 5]
    a = _table(["1", "2", "3", "4"], **{field: values})
    b = _table(["4", "3", "2", "1"], **{field: [str(v).upper() for v in values[::-1]]})
    r = agreement_report({"A": a, "B": b})["fields"][field]
    assert r["percent_agreement"] == 1.0 and r["pairs"][0]["kappa"] == 1.0 and r["alpha"] == 1.0
    assert r["n_items_all"] == 4 and r["level"] == ("ordinal" if field == "condition" else "nominal")


def test_hand_computed_kappa() -> None:
    # 2×2 table yes/yes 20, yes/no 5, no/yes 10, no/no 15: po = 0.7, pe = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    ids = [f"i{i}" for i in range(50)]
    r = agreement_report({"A": _table(ids, stains=a), "B": _table(ids, stains=b)})
    pair = r["fields"]["stains"]["pairs"][0]
    assert pair["kappa"] == pytest.approx(0.4, abs=1e-4) and pair["percent_agreement"] == pytest.approx(0.7)
    assert pair["n_items"] == 50 and r["primary_statistic"] == "cohen_kappa"


def test_quadratic_weights_differ_from_unweighted_on_ordinal_field() -> None:
    # every disagreement is one step: unweighted κ = 16/37, quadratic κ = 1 − (3/7)/(113/49) = 92/113
    ids = list("abcdefg")
    a, b = [1, 1, 2, 2, 3, 3, 4], [1, 2, 2, 3, 3, 4, 4]
    tables = {"A": _table(ids, condition=a), "B": _table(ids, condition=b)}
    pair = agreement_report(tables)["fields"]["condition"]["pairs"][0]
    assert pair["kappa"] == pytest.approx(92 / 113, abs=1e-4)
    assert pair["kappa_unweighted"] == pytest.approx(16 / 37, abs=1e-4)
    nominal = agreement_report(tables, ordinal=[])["fields"]["condition"]
    assert nominal["level"] == "nominal" and nominal["pairs"][0]["kappa"] == pytest.approx(16 / 37, abs=1e-4)
    assert "kappa_unweighted" not in nominal["pairs"][0]


def test_integer_scale_domain_fills_unused_steps() -> None:
    # values 1, 2 and 5 only: with the 1..5 domain 2↔5 is three steps (quadratic weight 9), not one
    ids = list("abcde")
    a, b = [1, 2, 5, 5, 2], [2, 2, 5, 2, 1]
    f = agreement_report({"A": _table(ids, condition=a), "B": _table(ids, condition=b)})["fields"]["condition"]
    assert f["values"] == ["1", "2", "3", "4", "5"]
    on_scale = cohen_kappa_score([v - 1 for v in a], [v - 1 for v in b], labels=range(5), weights="quadratic")
    rank = {1: 0, 2: 1, 5: 2}
    on_ranks = cohen_kappa_score([rank[v] for v in a], [rank[v] for v in b], weights="quadratic")
    assert f["pairs"][0]["kappa"] == pytest.approx(on_scale, abs=1e-4) and abs(on_scale - on_ranks) > 0.05


@pytest.mark.parametrize(("values", "level", "order"), [
    (["<100", "100-200", "200+", "100-200"], "ordinal", ["<100", "100-200", "200+"]),
    (["under 100 sek", "100–200 sek", "over 200 sek", "under 100 sek"], "ordinal",
     ["under 100 sek", "100–200 sek", "over 200 sek"]),
    (["50", "120", "300", "120"], "ordinal", ["50", "120", "300"]),
    (["cheap", "expensive", "cheap", "mid"], "nominal", ["cheap", "expensive", "mid"]),
])
def test_price_is_ordinal_only_for_numbers_and_bands(values: list[str], level: str, order: list[str]) -> None:
    ids = list("abcd")
    f = agreement_report({"A": _table(ids, price=values), "B": _table(ids, price=values[::-1])})["fields"]["price"]
    assert f["level"] == level and f["values"] == order
    assert any("compared as nominal" in n for n in f["notes"]) == (level == "nominal")


def test_explicit_order_makes_words_ordinal_and_rejects_unknown_values() -> None:
    ids = list("abc")
    tables = {"A": _table(ids, condition=["poor", "fair", "good"]), "B": _table(ids, condition=["fair", "fair", "good"])}
    f = agreement_report(tables, ordinal={"condition": ["Poor", "fair", "GOOD"]})["fields"]["condition"]
    assert f["level"] == "ordinal" and f["values"] == ["poor", "fair", "good"]
    with pytest.raises(AgreementInputError, match="not in the given order"):
        agreement_report(tables, ordinal={"condition": ["poor", "good"]})


def test_three_annotators_krippendorff_example(tmp_path: Path) -> None:
    # Krippendorff (2011) / the krippendorff package docs: nominal alpha 0.691358
    nan = None
    raters = [[nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
              [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
              [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4]]
    paths = []
    for r, values in enumerate(raters):
        # rater 1 leaves empty cells, the others leave out rows
        rows = [[f"u{u}", v] for u, v in enumerate(values) if r == 0 or v is not None]
        paths.append(_csv(tmp_path / f"r{r}.csv", rows, ["item_id", "type"]))
    r = agreement_report(paths)
    f = r["fields"]["type"]
    assert r["annotators"] == ["r0", "r1", "r2"] and r["primary_statistic"] == "krippendorff_alpha"
    assert f["alpha"] == pytest.approx(0.691358, abs=1e-4) and f["alpha_level"] == "nominal"
    assert len(f["pairs"]) == 3 and f["alpha_n_items"] == 12  # units rated twice or more
    assert f["n_items_all"] == 2 and f["percent_agreement"] == 0.5  # u5 (3, 3, 4) and u6 (4, 4, 4)
    assert {(p["a"], p["b"]): p["n_items"] for p in f["pairs"]} == {("r0", "r1"): 3, ("r0", "r2"): 8,
                                                                    ("r1", "r2"): 5}


def test_single_value_field_is_undefined_not_a_crash() -> None:
    ids = list("abc")
    f = agreement_report({"A": _table(ids, holes=["no"] * 3), "B": _table(ids, holes=["No"] * 3)})["fields"]["holes"]
    assert f["percent_agreement"] == 1.0 and f["pairs"][0]["kappa"] is None and f["alpha"] is None
    assert any("only the value 'no'" in n for n in f["notes"])


# --- the model ----------------------------------------------------------------------------------------------
def _pair_with_model(model_values: list[Any] | None) -> dict[str, Any]:
    ids = [f"i{i}" for i in range(12)]
    a = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3, 3]
    b = [1, 2, 3, 4, 4, 2, 2, 3, 5, 5, 2, 3]
    model = None if model_values is None else [_record(i, condition=v) for i, v in zip(ids, model_values, strict=True)]
    return agreement_report({"A": _table(ids, condition=a, stains=["x"] * 12),
                             "B": _table(ids, condition=b, stains=["x"] * 12)}, model=model, bootstrap=200)


def test_model_absent() -> None:
    r = _pair_with_model(None)
    assert r["model"] is None and r["verdict_rule"] is None and r["fields"]["condition"]["model"] is None
    assert r["summary"][0]["model_verdict"] is None


def test_model_that_copies_an_annotator_is_on_par_or_above() -> None:
    r = _pair_with_model([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3, 3])
    m = r["fields"]["condition"]["model"]
    human = r["fields"]["condition"]["pairs"][0]["kappa"]
    assert m["kappa"]["A"] == 1.0 and m["kappa"]["B"] == pytest.approx(human, abs=1e-4)
    assert m["n_items"] == 12 and m["human_kappa_mean_same_items"] == pytest.approx(human, abs=1e-4)
    assert m["verdict"] in {"on_par", "above_human"}
    lo, hi = m["difference_ci95"]
    assert lo <= m["difference"] <= hi
    assert r["summary"][0]["model_verdict"] == m["verdict_text"] and r["verdict_rule"].startswith("d = mean")
    assert r["fields"]["stains"]["model"] is None  # the model carries no stains grade
    assert any("no 'stains'" in n for n in r["fields"]["stains"]["notes"])


def test_model_far_from_annotators_is_below_human() -> None:
    m = _pair_with_model([5, 4, 1, 1, 1, 5, 4, 1, 1, 2, 5, 1])["fields"]["condition"]["model"]
    assert m["kappa_mean"] < 0 and m["verdict"] == "below_human" and m["verdict_text"] == "below human agreement"


@pytest.mark.parametrize(("model_k", "human_k", "code"), [
    (0.70, 0.72, "on_par"), (0.67, 0.72, "on_par"), (0.66, 0.72, "below_human"), (0.80, 0.72, "above_human"),
    (None, 0.72, "undefined"), (0.5, None, "undefined"),
])
def test_verdict_rule(model_k: float | None, human_k: float | None, code: str) -> None:
    assert ag._verdict(model_k, human_k, 0.05)[0] == code


def test_model_only_on_some_items_uses_common_items(tmp_path: Path) -> None:
    ids = [f"i{i}" for i in range(6)]
    tables = {"A": _table(ids, condition=[1, 2, 3, 4, 5, 3]), "B": _table(ids, condition=[1, 2, 3, 4, 4, 1])}
    recs = [_record("i0", condition=1), _record("i1", condition=2), _record("i2", condition=3),
            _record("i3"), _record("zz", condition=2)]
    r = agreement_report(tables, model=recs)
    assert r["fields"]["condition"]["model"]["n_items"] == 3 and r["items"]["model_matched"] == 4
    assert any("match no annotated item" in n for n in r["notes"])


@pytest.mark.parametrize("weights", [None, "quadratic"])
def test_bootstrap_kappa_matches_sklearn(weights: str | None) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, (5, 30)), rng.integers(0, 4, (5, 30))
    batch = ag._kappa_batch(a, b, 4, weights)
    ref = [cohen_kappa_score(a[i], b[i], labels=range(4), weights=weights) for i in range(5)]
    np.testing.assert_allclose(batch, ref, atol=1e-12)


# --- bad input ----------------------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [["1", 3]], ["item_id", "condition"])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        agreement_report([a, tmp_path / "nope.csv"])
    b = _csv(tmp_path / "b.csv", [["1", 3]], ["id", "condition"])
    with pytest.raises(FileNotFoundError, match="model predictions"):
        agreement_report([a, b], model=tmp_path / "m.jsonl")


@pytest.mark.parametrize(("tables", "match"), [
    ({"A": _table(["1"], condition=[3])}, "two or more"),
    ({"A": _table(["1", "2"], condition=[3, 4]), "B": _table(["3", "4"], condition=[3, 4])}, "no item_id is in more"),
    ({"A": _table(["1"], condition=[3]), "B": _table(["1"], price=[3])}, "at least one field that two"),
    ({"A": _table(["1"], condition=[3]), "model": _table(["1"], condition=[3])}, "reserved"),
])
def test_bad_table_sets(tables: dict[str, pd.DataFrame], match: str) -> None:
    with pytest.raises(AgreementInputError, match=match):
        agreement_report(tables)


def test_field_missing_in_some_files_becomes_notes() -> None:
    ids = list("abc")
    tables = {"A": _table(ids, condition=[1, 2, 3], trend=["x", "y", "x"], season=["w", "s", "w"]),
              "B": _table(ids, condition=[1, 2, 3], season=["w", "s", "s"]),
              "C": _table(ids, condition=[1, 2, 2], season=["w", "s", "w"])}
    r = agreement_report(tables)
    assert set(r["fields"]) == {"condition", "season"} and "trend" in r["skipped_fields"]
    assert any("'trend' skipped: only in A" in n for n in r["notes"])
    r2 = agreement_report({**tables, "C": tables["C"].drop(columns="season")}, fields=["season", "usage"])
    assert r2["fields"]["season"]["annotators"] == ["A", "B"]
    assert r2["fields"]["season"]["notes"][0].startswith("not in ['C']")
    assert "usage" in r2["skipped_fields"]


def test_model_without_overlap_is_an_error() -> None:
    ids = list("ab")
    tables = {"A": _table(ids, condition=[1, 2]), "B": _table(ids, condition=[1, 2])}
    with pytest.raises(AgreementInputError, match="none of the 1 model item_ids"):
        agreement_report(tables, model=[_record("zz", condition=1)])


# --- outputs and the command line ---------------------------------------------------------------------------
def test_plot_agreement_writes_png(tmp_path: Path) -> None:
    r = _pair_with_model([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3, 3])
    path = plot_agreement(r, tmp_path / "sub" / "k.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _main(argv: list[str]) -> int:
    from fashionlens import cli

    return cli.main(argv)


@pytest.fixture
def annotated(tmp_path: Path) -> dict[str, Path]:
    ids = [f"g{i}" for i in range(8)]
    a = _csv(tmp_path / "orgA.csv", [[i, c, s, p] for i, c, s, p in zip(
        ids, [1, 2, 3, 4, 5, 2, 3, 4], ["yes", "no", "no", "yes", "no", "no", "yes", "no"],
        ["<100", "100-200", "200+", "<100", "100-200", "<100", "200+", "<100"], strict=True)],
        ["item_id", "condition", "stains", "price"])
    b = _csv(tmp_path / "orgB.csv", [[i, c, s, p] for i, c, s, p in zip(
        ids, ["1.0", 2, 4, 4, 5, 3, 3, 4], ["Yes", "no", "yes", "yes", "no", "no", "yes", "no"],
        ["<100", "<100", "200+", "<100", "100-200", "<100", "200+", "100-200"], strict=True)],
        ["id", "condition", "stains", "price"], sep=";")
    m = tmp_path / "model.jsonl"
    m.write_text("\n".join(json.dumps(_record(i, condition=c, stains=s)) for i, c, s in zip(
        ids, [1, 2, 3, 4, 4, 2, 3, 5], ["yes", "no", "no", "yes", "yes", "no", "yes", "no"], strict=True)) + "\n")
    return {"a": a, "b": b, "model": m, "out": tmp_path / "out"}


def test_cli_end_to_end(annotated: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = _main(["agreement", str(annotated["a"]), str(annotated["b"]), "--model", str(annotated["model"]),
                "--out", str(annotated["out"]), "--bootstrap", "100"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["annotators"] == ["orgA", "orgB"] and set(report["fields"]) == {"condition", "price", "stains"}
    assert report["fields"]["condition"]["level"] == "ordinal" and report["fields"]["price"]["level"] == "ordinal"
    assert report["fields"]["stains"]["model"]["verdict"] in {"on_par", "below_human", "above_human"}
    assert report["fields"]["price"]["model"] is None
    assert json.loads((annotated["out"] / "agreement.json").read_text()) == report
    assert (annotated["out"] / "agreement_kappa.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in captured.err


def test_cli_fields_ordinal_and_order_options(annotated: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = _main(["agreement", str(annotated["a"]), str(annotated["b"]), "--fields", "condition,price",
                "--ordinal", "", "--bootstrap", "0"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(report["fields"]) == {"condition", "price"}
    assert {f["level"] for f in report["fields"].values()} == {"nominal"}
    rc = _main(["agreement", str(annotated["a"]), str(annotated["b"]), "--fields", "stains",
                "--order", "stains=no,yes"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["fields"]["stains"]["level"] == "ordinal"


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda p: [str(p["a"]), str(p["a"].with_name("missing.csv"))], "not found"),
    (lambda p: [str(p["a"]), str(p["b"]), "--model", str(p["a"])], "line 1: expected one JSON"),
    (lambda p: [str(p["a"])], "two or more"),
    (lambda p: [str(p["a"]), str(p["b"]), "--order", "condition"], "FIELD=LOWEST"),
    (lambda p: [str(p["a"]), str(p["dup"])], "duplicated"),
    (lambda p: [str(p["a"]), str(p["noid"])], "expected an id column"),
    (lambda p: [str(p["a"]), str(p["b"]), "--out", str(p["a"])], "--out"),
])
def test_cli_bad_input_is_an_error_message(annotated: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                           make_args: Any, message: str) -> None:
    annotated["dup"] = _csv(annotated["a"].with_name("dup.csv"), [["g1", 1], ["g1", 2]], ["item_id", "condition"])
    annotated["noid"] = _csv(annotated["a"].with_name("noid.csv"), [["g1", 1]], ["name", "condition"])
    rc = _main(["agreement", *make_args(annotated), "--bootstrap", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_report_is_plain_json() -> None:
    r = _pair_with_model([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3, 3])
    text = json.dumps(r, allow_nan=False)  # no NaN/inf sneaks in
    assert json.loads(text) == r
