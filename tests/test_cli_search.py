"""``fashionlens index build/add/remove/info`` and ``search`` end to end on generated photos, with
small random alignment heads and a fake caption encoder (no MiniLM needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.models.alignment import AlignmentMeta, save_alignment

COLOURS = [(200, 30, 35), (40, 80, 180), (240, 220, 50), (20, 20, 20), (50, 130, 60)]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_text_encoder) -> dict[str, Path]:
    from fashionlens.search import text

    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **k: fake_text_encoder)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, rgb in enumerate(COLOURS):
        img = np.full((96, 72, 3), 230, np.uint8)
        img[10 + 4 * i:80, 10:60 - 5 * i] = rgb
        Image.fromarray(img).save(photos / f"p{i}.png")
    rng = np.random.default_rng(0)
    heads = save_alignment(AlignmentMeta(name="toy-align", version="t", dim=8),
                           {"image.0.weight": rng.standard_normal((8, 1280)), "image.0.bias": np.zeros(8),
                            "text.0.weight": rng.standard_normal((8, 384)), "text.0.bias": np.zeros(8)},
                           tmp_path / "heads.npz")
    extra = tmp_path / "extra.png"
    Image.fromarray(np.full((64, 64, 3), (240, 150, 180), np.uint8)).save(extra)
    return {"photos": photos, "heads": heads, "index": tmp_path / "index", "extra": extra, "tmp": tmp_path}


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_build_search_add_remove_round_trip(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    idx, heads, photos = str(setup["index"]), str(setup["heads"]), setup["photos"]
    common = ["--whole-image", "--alignment", heads, "--threads", "1"]
    assert main(["index", "build", str(photos), "--index", idx, "-q", *common]) == 0
    built = _json_out(capsys)
    assert built["vectors"] == 5 and built["garments"] == 5 and built["kind"] == "flat" and built["dim"] == 1280 + 8

    p0 = str(photos / "p0.png")
    out_json, sheet = setup["tmp"] / "hits.json", setup["tmp"] / "sheet.png"
    assert main(["search", "--index", idx, "--image", p0, "-k", "3", "--json", str(out_json), "--sheet", str(sheet),
                 *common]) == 0
    res = json.loads(out_json.read_text())
    hits = res["hits"]
    assert len(hits) == 3 and hits[0]["path"] == p0 and hits[0]["score"] == pytest.approx(1.0, abs=2e-3)
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert res["query"]["garment"] == 0 and res["query"]["mode"] == "whole_image"
    assert {"garment", "colours", "pattern", "material"} <= set(hits[0]["attributes"])
    with Image.open(sheet) as im:
        assert im.width > 0 and im.height > 0
    capsys.readouterr()

    # text search and filters
    assert main(["search", "--index", idx, "--text", "red striped sweater", "-k", "2", *common]) == 0
    text_hits = _json_out(capsys)["hits"]
    assert len(text_hits) == 2 and all(-1.0 <= h["score"] <= 1.0 for h in text_hits)
    cat = hits[0]["category"]
    assert main(["search", "--index", idx, "--image", p0, "--category", cat, *common]) == 0
    filtered = _json_out(capsys)["hits"]
    assert filtered and all(h["category"] == cat for h in filtered)
    assert main(["search", "--index", idx, "--text", "boots", "--pattern", "no-such-pattern", *common]) == 0
    assert _json_out(capsys)["hits"] == []

    # add: a new photo, then the same photo again (replaced, not duplicated)
    extra = str(setup["extra"])
    assert main(["index", "add", extra, "--index", idx, "-q", *common]) == 0
    assert _json_out(capsys)["vectors"] == 6
    assert main(["index", "add", extra, "--index", idx, "-q", *common]) == 0
    again = _json_out(capsys)
    assert again["vectors"] == 6 and again["replaced"] == 1
    assert main(["index", "remove", extra, "--index", idx]) == 0
    assert _json_out(capsys)["removed"] == 1
    assert main(["index", "info", "--index", idx]) == 0
    info = _json_out(capsys)
    assert info["vectors"] == 5 and info["info"]["alignment"]["name"] == "toy-align"

    # errors are reported, not raised
    assert main(["search", "--index", idx, "--image", p0, "--garment", "3", *common]) == 2
    assert "garment 3 does not exist" in capsys.readouterr().err
    assert main(["index", "remove", "--index", idx]) == 2


def test_tag_embed_jsonl_and_no_text_index(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = setup["tmp"] / "tags.jsonl"
    assert main(["tag", str(setup["photos"]), "--whole-image", "--embed", "-o", str(jsonl), "-q", "--threads", "1"]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 5 and all(r["garments"][0]["embedding"]["dim"] == 1280 for r in records)
    idx = str(setup["tmp"] / "plain-index")
    assert main(["index", "build", str(jsonl), "--index", idx, "--no-text", "-q"]) == 0
    assert _json_out(capsys)["dim"] == 1280
    assert main(["search", "--index", idx, "--text", "red", "--whole-image"]) == 2
    assert "text search is not available" in capsys.readouterr().err
    p0 = str(setup["photos"] / "p0.png")
    assert main(["search", "--index", idx, "--image", p0, "--whole-image", "-k", "1"]) == 0
    assert _json_out(capsys)["hits"][0]["path"] == p0
    # JSONL without embeddings is refused with a hint
    plain = setup["tmp"] / "plain.jsonl"
    assert main(["tag", p0, "--whole-image", "-o", str(plain), "-q", "--threads", "1"]) == 0
    assert main(["index", "build", str(plain), "--index", str(setup["tmp"] / "x"), "--no-text"]) == 2
    assert "--embed" in capsys.readouterr().err


def test_library_does_not_import_the_cli() -> None:
    import ast

    root = Path(__file__).resolve().parents[1] / "src" / "fashionlens"
    for path in root.rglob("*.py"):
        if path.parent == root / "cli":
            continue  # the command-line package itself
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                assert not any(n and (n == "fashionlens.cli" or n.startswith(("fashionlens.cli.", "fashionlens.cli_")))
                               for n in names), path
