"""Grading heads: masked loss, fusion, decoding, metrics, training on the generated release fixture,
save/load, ``Grader``, ``evaluate grader`` and the CLI commands."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionlens.evaluate.grading import evaluate_grader, head_metrics
from fashionlens.grading.grader import Grader, default_grader_path
from fashionlens.imageio import load_image
from fashionlens.io.rise_release import GRADING_HEADS, ItemRecord, read_items
from fashionlens.io.splits import group_split
from fashionlens.models.grader import (
    GraderHeadSpec,
    GraderMeta,
    decode_indices,
    fuse_views,
    load_grader,
    save_grader,
)
from fashionlens.models.heads import HeadSpec
from fashionlens.train.config import ConfigError, load_config
from fashionlens.train.grader import GraderTrainConfig, train_grader
from fashionlens.train.grader_data import (
    build_vocabularies,
    embed_items,
    encode_targets,
)
from fashionlens.train.losses import multitask_loss

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def _fixtures():
    spec = importlib.util.spec_from_file_location("grading_fixtures", Path(__file__).resolve().parent / "fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FRACTIONS = (0.6, 0.15, 0.25)


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _fixtures().write_release_fixture(tmp_path_factory.mktemp("release"), n_items=90, seed=0, size=112,
                                             broken=True)


@pytest.fixture(scope="module")
def trained(fixture_data: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real training run on the fixture (all heads), embeddings cached for the other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("grader")
    config = GraderTrainConfig(data=str(fixture_data["root"]), out_dir=str(out / "run"), split_fractions=FRACTIONS,
                               embedding_cache=str(out / "cache"), epochs=150, patience=15, lr=1e-3,
                               min_class_count=2, seed=0)
    result = train_grader(config)
    torch.set_num_threads(before)
    return {"result": result, "config": config, "cache": out / "cache", "out": out}


# ------------------------------------------------------------------------------- loss, fusion, decoding


def test_masked_loss_ignores_items_without_a_label() -> None:
    heads = [HeadSpec("condition", "single", ("1", "2", "3")), HeadSpec("type", "single", ("a", "b"))]
    torch.manual_seed(0)
    logits = [torch.randn(4, 3), torch.randn(4, 2)]
    targets = {"condition": torch.tensor([0, -1, 2, -1]), "type": torch.tensor([-1, -1, -1, -1])}
    total, parts = multitask_loss(logits, targets, heads, weights={})
    assert set(parts) == {"condition"}  # no item labelled for type: no type loss at all
    changed = [logits[0].clone(), logits[1] * 100]
    changed[0][[1, 3]] = torch.randn(2, 3) * 50  # unlabelled rows may say anything
    total2, _ = multitask_loss(changed, targets, heads, weights={})
    assert torch.isclose(total, total2)
    expected = torch.nn.functional.cross_entropy(logits[0][[0, 2]], torch.tensor([0, 2]))
    assert torch.isclose(total, expected)


def test_encode_targets_marks_missing_and_unknown_values() -> None:
    items = [ItemRecord("a", {"front": Path("a.jpg")}, labels={"condition": 3, "type": "Vest"}),
             ItemRecord("b", {"front": Path("b.jpg")}, labels={"condition": None, "type": "Coat"}),
             ItemRecord("c", {"back": Path("c.jpg")}, labels={})]
    specs = (GraderHeadSpec("condition", "ordinal", (1, 3, 5)), GraderHeadSpec("type", "nominal", ("Vest", "Jacket")))
    y, unknown = encode_targets(items, specs)
    assert y["condition"].tolist() == [1, -1, -1]
    assert y["type"].tolist() == [0, -1, -1]
    assert unknown == {"type": 1}
    assert encode_targets([], specs)[0]["type"].shape == (0,)


def test_build_vocabularies_reports_heads_without_enough_labels() -> None:
    def item(i: int, **labels) -> ItemRecord:
        return ItemRecord(str(i), {"front": Path(f"{i}.jpg")}, labels=labels)

    items = ([item(i, condition=1 + i % 3, type="Vest" if i % 4 else "Jacket", trend="x") for i in range(12)]
             + [item(99, condition=5, type="Coat")])
    vocab, untrained, counts = build_vocabularies(items, ("condition", "type", "trend", "price"), min_labels=10,
                                                  min_class_count=2)
    assert vocab == {"condition": [1, 2, 3], "type": ["Vest", "Jacket"]}  # 5 and Coat: seen once
    assert set(untrained) == {"trend", "price"} and "no training item" in untrained["price"]
    assert "fewer than 2 values" in untrained["trend"]
    assert counts["type"] == {"Vest": 9, "Jacket": 3, "Coat": 1}
    _, untrained, _ = build_vocabularies(items, ("condition",), min_labels=20, min_class_count=2)
    assert "only 12 labelled" in untrained["condition"]


@pytest.mark.parametrize("fusion", ["mean", "concat"])
def test_fuse_views_with_missing_views(fusion: str) -> None:
    f = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    b = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]], np.float32)
    present = {"front": np.array([True, True, False]), "back": np.array([True, False, True])}
    x = fuse_views({"front": f, "back": b}, present, fusion=fusion)
    if fusion == "mean":
        np.testing.assert_allclose(x, [[0.7071, 0.7071], [1, 0], [0, 1]], atol=1e-4)
    else:
        np.testing.assert_allclose(x, [[1, 0, 0, 1, 1, 1], [1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1]])
    with pytest.raises(ValueError, match="neither a front nor a back"):
        fuse_views({"front": f}, {"front": np.array([True, False, True])}, fusion=fusion)
    with pytest.raises(ValueError, match="front and/or back"):
        fuse_views({"label": f}, {"label": np.ones(3, bool)}, fusion=fusion)


@pytest.mark.parametrize(("probs", "kind", "expected"), [
    ([0.5, 0.0, 0.0, 0.0, 0.5], "ordinal", 2),  # torn between 1 and 5: expected value 3
    ([0.5, 0.0, 0.0, 0.0, 0.5], "nominal", 0),
    ([0.1, 0.6, 0.3, 0.0, 0.0], "ordinal", 1),
    ([0.0, 0.0, 0.0, 0.4, 0.6], "ordinal", 4),
])
def test_decode_indices(probs: list[float], kind: str, expected: int) -> None:
    values = (1, 2, 3, 4, 5) if kind == "ordinal" else ("a", "b", "c", "d", "e")
    spec = GraderHeadSpec("h", kind, values)
    assert decode_indices(spec, np.array([probs])).tolist() == [expected]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "weird", "values": ("a", "b")}, "nominal or ordinal"),
    ({"kind": "nominal", "values": ("a",)}, "at least 2"),
    ({"kind": "nominal", "values": ("a", "a")}, "distinct"),
    ({"kind": "ordinal", "values": (3, 1)}, "increasing integers"),
    ({"kind": "ordinal", "values": ("1", "2")}, "increasing integers"),
])
def test_head_spec_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GraderHeadSpec(name="h", **kwargs)


# ------------------------------------------------------------------------------------------ metrics


def test_head_metrics_against_majority_baseline() -> None:
    spec = GraderHeadSpec("condition", "ordinal", (1, 2, 3))
    m = head_metrics(np.array([0, 1, 2, 2, -1]), np.array([0, 1, 2, 2, 0]), spec, majority=2)
    assert m["n"] == 4 and m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["qwk"] == 1.0
    assert m["baseline"] == {"class": 3, "accuracy": 0.5, "macro_f1": pytest.approx(0.2222, abs=1e-4), "qwk": 0.0}
    assert m["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]
    off = head_metrics(np.array([0, 2]), np.array([2, 0]), spec, majority=0)
    assert off["accuracy"] == 0.0 and off["qwk"] < 0
    nominal = head_metrics(np.array([0, 1]), np.array([0, 0]), GraderHeadSpec("t", "nominal", ("a", "b")), majority=0)
    assert "qwk" not in nominal and nominal["accuracy"] == 0.5


def test_head_metrics_empty_and_invalid() -> None:
    spec = GraderHeadSpec("pilling", "ordinal", (1, 2))
    m = head_metrics(np.array([-1, -1]), np.array([0, 1]), spec, majority=0)
    assert m["n"] == 0 and m["accuracy"] is None and m["qwk"] is None and m["baseline"]["class"] == 1
    with pytest.raises(ValueError, match="majority index"):
        head_metrics(np.array([0]), np.array([0]), spec, majority=5)
    with pytest.raises(ValueError, match="differ in shape"):
        head_metrics(np.array([0, 1]), np.array([0]), spec, majority=0)


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"heads": ["condition", "colour"]}, "expected names from"),
    ({"heads": "type"}, "expected a list"),
    ({"fusion": "max"}, "fusion"),
    ({"split_fractions": [0.9, 0.0, 0.1]}, "split_fractions"),
    ({"head_loss_weights": {"type": 0}}, "positive number"),
    ({"epochs": 0}, "epochs"),
    ({"dropout": 1.0}, "dropout"),
    ({"pateince": 3}, "Did you mean 'patience'"),
])
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides, config_class=GraderTrainConfig)


def test_shipped_config_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / "grader_rise_subset.yaml"
    config = load_config(path, config_class=GraderTrainConfig)
    assert config.heads == ("type", "material", "season") and config.seed == 0
    assert config.split_fractions == (0.7, 0.15, 0.15)


# ------------------------------------------------------------------------------------------ training


def test_training_beats_the_majority_class_on_held_out_items(trained: dict) -> None:
    result = trained["result"]
    assert set(result["trained"]) == set(GRADING_HEADS)
    test = result["metrics"]["test"]
    for head in ("type", "material", "condition"):
        m = test[head]
        assert m["n"] >= 15
        assert m["accuracy"] >= m["baseline"]["accuracy"] + 0.2, (head, m)
        assert m["macro_f1"] > m["baseline"]["macro_f1"] + 0.2, (head, m)
    assert test["condition"]["qwk"] > 0.5 and test["condition"]["baseline"]["qwk"] == 0.0
    assert test["price"]["n"] < test["type"]["n"]  # price is missing for about a quarter: masked
    # the broken items are kept and reported, never silently dropped
    read = result["read"]
    assert read["bad_labels"] and read["no_labels"] and read["missing_views"] and read["left_out"]


def test_weights_round_trip(trained: dict, tmp_path: Path) -> None:
    model = load_grader(trained["result"]["weights"])
    meta = model.meta
    assert meta.trained_on["type"]["n_train"] > 30 and "release layout" in meta.trained_on["type"]["data"]
    assert meta.head("condition").kind == "ordinal" and meta.head("condition").values == (1, 2, 3, 4, 5)
    assert meta.extra["split"] == {"seed": 0, "fractions": list(FRACTIONS)}
    assert meta.classifier["name"] == "garment-classifier-lite0"
    assert Path(trained["result"]["weights"]).stat().st_size < 3 * 2**20
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, model.input_dim)).astype(np.float32)
    again = load_grader(save_grader(meta, model.arrays(), tmp_path / "copy.npz"))
    assert again.meta.to_dict() == meta.to_dict()
    for head, p in model.predict_proba(x).items():
        np.testing.assert_allclose(again.predict_proba(x)[head], p, atol=1e-3)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="grader-heads"):
        load_grader(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_grader(tmp_path / "missing.npz")
    arrays = model.arrays()
    arrays.pop("head.type.bias")
    with pytest.raises(ValueError, match="missing arrays"):
        save_grader(meta, arrays, tmp_path / "x.npz")


def test_grader_returns_only_trained_heads_and_matches_training(trained: dict, fixture_data: dict,
                                                                 tmp_path: Path) -> None:
    config = trained["config"]
    small = GraderTrainConfig(**{**config.to_dict(), "heads": ["type", "condition"], "out_dir": str(tmp_path / "two"),
                                 "epochs": 40})
    result = train_grader(small)
    assert set(result["trained"]) == {"type", "condition"}
    assert result["untrained"]["usage"] == "not asked for (config heads)"
    grader = Grader(result["weights"])
    assert set(grader.trained_heads) == {"type", "condition"} and "usage" in grader.untrained
    items, _ = read_items(fixture_data["root"])
    item = next(it for it in items if it.item_id in fixture_data["items"])
    rgbs = {r: load_image(p).rgb for r, p in item.views.items()}
    grades = grader.grade_views(rgbs)
    assert set(grades) == {"type", "condition"}
    assert isinstance(grades["condition"]["id"], int) and 0 < grades["type"]["score"] <= 1
    # the inference path gives what the training path gives for the same photos
    emb, present = embed_items([item], cache=None)
    expected = grader.model.predict(fuse_views(emb, present, fusion="mean"))
    assert {h: g["id"] for h, g in grades.items()} == {h: v[0]["id"] for h, v in expected.items()}
    assert grader.grade_views({"back": rgbs["back"], "label": rgbs["label"]}).keys() == grades.keys()
    with pytest.raises(ValueError, match="front or back photo"):
        grader.grade_views({"label": rgbs["label"]})
    with pytest.raises(ValueError, match="roles must be"):
        grader.grade_views({"side": rgbs["front"]})
    with pytest.raises(ValueError, match="uint8"):
        grader.grade_views({"front": rgbs["front"].astype(np.float32)})


def test_grader_refuses_heads_of_another_classifier(trained: dict, tmp_path: Path) -> None:
    model = load_grader(trained["result"]["weights"])
    meta = GraderMeta.from_dict({**model.meta.to_dict(), "classifier": {"name": "other-classifier", "version": "9"}})
    path = save_grader(meta, model.arrays(), tmp_path / "other.npz")
    with pytest.raises(ValueError, match="other-classifier"):
        Grader(path)


def test_evaluate_grader_writes_metrics_and_pngs(trained: dict, fixture_data: dict, tmp_path: Path) -> None:
    result = evaluate_grader(trained["result"]["weights"], fixture_data["root"], split="test", out_dir=tmp_path,
                             embedding_cache=trained["cache"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["heads"]["type"]["accuracy"] == result["heads"]["type"]["accuracy"]
    for head, m in trained["result"]["metrics"]["test"].items():  # the same numbers as at the end of training
        assert {k: result["heads"][head][k] for k in m} == m, head
    assert (tmp_path / "confusion_condition.png").stat().st_size > 1000
    items, _ = read_items(fixture_data["root"])
    n_test = len(group_split(items, fractions=FRACTIONS, seed=0)["test"])
    assert result["items"] == n_test
    with pytest.raises(ValueError, match="split must be"):
        evaluate_grader(trained["result"]["weights"], fixture_data["root"], split="dev", out_dir=tmp_path)


def test_train_fails_plainly_without_labels(tmp_path: Path, fixture_data: dict) -> None:
    with pytest.raises(ConfigError, match="data"):
        train_grader(GraderTrainConfig())
    with pytest.raises(ValueError, match="no head has enough labels"):
        train_grader(GraderTrainConfig(data=str(fixture_data["root"]), heads=("type",), min_labels=10_000,
                                       out_dir=str(tmp_path), embedding_cache=None))


# ------------------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    from fashionlens.cli.grading import register_evaluate, register_train

    p = argparse.ArgumentParser(prog="fashionlens")
    sub = p.add_subparsers(dest="command", required=True)
    register_train(sub.add_parser("train").add_subparsers(dest="what", required=True))
    register_evaluate(sub.add_parser("evaluate").add_subparsers(dest="what", required=True))
    return p


def test_cli_train_and_evaluate_grader(trained: dict, fixture_data: dict, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"embedding_cache: {trained['cache']}\nsplit_fractions: {list(FRACTIONS)}\nepochs: 30\n")
    args = _parser().parse_args(["train", "grader", "--data", str(fixture_data["root"]), "--config", str(config),
                                 "--out", str(tmp_path / "run"), "--set", "heads=[type, material]", "-q"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "trained heads (had labels): type" in out and "material" in out.split("NOT trained")[0]
    not_trained = out.split("NOT trained:")[1]
    for head in ("usage", "condition", "price", "stains", "holes", "pilling", "damage", "season", "trend"):
        assert f"  {head}: not asked for" in not_trained
    assert "test type: accuracy" in out
    weights = tmp_path / "run" / "grader.npz"
    args = _parser().parse_args(["evaluate", "grader", "--weights", str(weights), "--data", str(fixture_data["root"]),
                                 "--split", "val", "--out", str(tmp_path / "ev"), "--embedding-cache",
                                 str(trained["cache"]), "-q"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "val" and set(printed["heads"]) == {"type", "material"}
    assert (tmp_path / "ev" / "confusion_type.png").is_file()


# ------------------------------------------------------------------------------------------ shipped weights


def test_shipped_grader_weights() -> None:
    try:
        path = default_grader_path()
    except FileNotFoundError:
        pytest.skip("shipped grader weights not built yet")
    model = load_grader(path)
    meta = model.meta
    assert {h.name for h in meta.heads} == {"type", "material", "season"}
    for head in ("usage", "condition", "price", "stains", "holes", "pilling", "damage", "trend"):
        assert head in meta.untrained
    for head in ("type", "material", "season"):
        assert "shared subset" in meta.trained_on[head]["data"]
        assert meta.metrics["test"][head]["n"] > 100
    assert meta.extra["split"] == {"seed": 0, "fractions": [0.7, 0.15, 0.15]}
    assert path.stat().st_size < 2**20
