"""``fashionlens search --image`` on a photo of several garments (issue 27): ``--garment auto`` (the
default) searches the largest confident garment and says which on stderr; ``--garment N`` searches
that one; the JSON gains the photo's garments and each hit a readable caption."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

#: the stand-in detector's garments, in its order: (type, score, colour, box as fractions x0, y0, x1, y1)
OUTFIT = (("footwear", 0.97, (20, 20, 20), (0.25, 0.86, 0.75, 0.97)),  # first and surest, but small
          ("upper-body", 0.90, (200, 30, 35), (0.18, 0.08, 0.82, 0.50)),  # the largest: auto's choice
          ("lower-body", 0.85, (40, 80, 180), (0.30, 0.50, 0.70, 0.84)))


class _OutfitDetector:
    meta = SimpleNamespace(name="outfit-stand-in", version="test", extra={})
    backend = "stand-in"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def detect(self, image: Any, settings: Any = None) -> Any:
        from fashionlens.result import Garments

        w, h = image.width, image.height
        return Garments(xyxy=[[x0 * w, y0 * h, x1 * w, y1 * h] for *_, (x0, y0, x1, y1) in OUTFIT],
                        object_type=[t for t, *_ in OUTFIT], confidence=[s for _, s, *_ in OUTFIT])


@pytest.fixture
def outfit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A whole-image index of three single-colour photos, an outfit photo, and the stand-in detector."""
    from fashionlens.detection import detector

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (_, _, rgb, _) in enumerate(OUTFIT):
        img = np.full((96, 72, 3), 230, np.uint8)
        img[10:86, 10:62] = rgb
        Image.fromarray(img).save(photos / f"p{i}.png")
    w, h = 300, 400
    img = np.full((h, w, 3), 236, np.uint8)
    for _, _, rgb, (x0, y0, x1, y1) in OUTFIT:
        img[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = rgb
    Image.fromarray(img).save(tmp_path / "outfit.png")
    index = tmp_path / "index"
    assert main(["index", "build", str(photos), "--index", str(index), "--whole-image", "--no-text", "-q",
                 "--threads", "1"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(detector, "GarmentDetector", _OutfitDetector)
    return {"index": str(index), "photo": str(tmp_path / "outfit.png"), "tmp": tmp_path}


def _search(outfit: dict[str, Any], *extra: str) -> list[str]:
    return ["search", "--index", outfit["index"], "--image", outfit["photo"], "--detector", "stand-in.pt",
            "--threads", "1", "-k", "3", *extra]


def test_auto_searches_the_largest_garment_and_says_so(outfit: dict[str, Any],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = outfit["tmp"] / "hits.json"
    sheet = outfit["tmp"] / "sheet.png"
    assert main(_search(outfit, "--json", str(out), "--sheet", str(sheet))) == 0
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if "searching garment" in x]
    assert line.startswith("fashionlens: searching garment 1 of 3: ")
    assert "largest confident" in line and "--garment 0–2" in line
    res = json.loads(out.read_text("utf-8"))
    q = res["query"]
    assert (q["garment"], q["garment_choice"], q["mode"]) == (1, "auto", "detect")
    assert [g["index"] for g in q["garments"]] == [0, 1, 2] and q["caption"] == q["garments"][1]["caption"]
    assert f"{q['category']} ({q['object_type']})" in line
    assert len(res["hits"]) == 3 and all(h["caption"] and "0." not in h["caption"] for h in res["hits"])
    with Image.open(sheet) as im:
        assert im.width > 0


def test_a_garment_number_searches_that_one(outfit: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_search(outfit, "--garment", "2")) == 0
    captured = capsys.readouterr()
    assert "fashionlens: searching garment 2 of 3: " in captured.err and "largest" not in captured.err
    q = json.loads(captured.out[captured.out.index("{"):])["query"]
    assert (q["garment"], q["garment_choice"]) == (2, "given")


def test_a_garment_the_photo_does_not_have_names_the_range(outfit: dict[str, Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_search(outfit, "--garment", "5")) == 2
    err = capsys.readouterr().err
    assert "garment 5 does not exist" in err and "0–2" in err


def test_garment_must_be_auto_or_a_number(outfit: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(_search(outfit, "--garment", "shoes"))
    assert exc.value.code == 2 and "expected auto or a garment number" in capsys.readouterr().err
