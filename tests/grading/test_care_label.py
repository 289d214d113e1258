"""Care/brand label reading: real offline OCR on rendered labels, and the line parsing on its own."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from fashionlens.grading.care_label import (
    LabelLine,
    LabelReader,
    LabelReading,
    brand_from_lines,
    composition_from_lines,
    load_brands,
    match_brand,
)
from fashionlens.grading.item import empty_item

_DEJAVU = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
try:
    import matplotlib

    _DEJAVU.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
except ImportError:  # pragma: no cover - matplotlib is a project dependency
    pass


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for path in _DEJAVU:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def render_label(lines: list[tuple[str, int]], *, size: tuple[int, int] = (420, 520),
                 scale: float = 1.0) -> np.ndarray:
    """A light label with centred dark lines ``(text, font px)``, all sizes multiplied by ``scale``."""
    w, h = round(size[0] * scale), round(size[1] * scale)
    im = Image.new("RGB", (w, h), (246, 244, 238))
    draw = ImageDraw.Draw(im)
    y = 20 * scale
    for text, px in lines:
        font = _font(round(px * scale))
        tw = draw.textlength(text, font=font)
        draw.text(((w - tw) / 2, y), text, font=font, fill=(25, 25, 30))
        y += px * scale * 1.55
    return np.asarray(im)


ZARA = [("ZARA", 64), ("80% WOOL", 26), ("20% POLYAMIDE", 26), ("MADE IN PORTUGAL", 20),
        ("MACHINE WASH 30", 18), ("DO NOT BLEACH", 18)]
SWEDISH = [("Lindex", 54), ("70% Ull", 26), ("30% Polyamid", 26), ("Tillverkad i Kina", 20), ("Storlek M", 20)]


@pytest.fixture(scope="module")
def reader() -> LabelReader:
    return LabelReader()


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the OCR tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------------------------- real OCR

def test_reads_brand_and_composition_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    reader = LabelReader()
    assert reader._engine is None  # loaded lazily
    reading = reader.read(render_label(ZARA))
    assert reading.composition is not None, reading.texts
    assert reading.composition.fibres == (("wool", 80.0), ("polyamide", 20.0))
    assert reading.brand == "Zara"
    assert reading.brand_source == "list"
    assert reading.timing_ms > 0
    assert all(0.5 <= ln.score <= 1.0 and len(ln.box) == 4 for ln in reading.lines)
    engine = reader._engine
    assert engine is not None
    reader.read(render_label(ZARA))
    assert reader._engine is engine  # loaded once


def test_reads_a_swedish_label_downscaled_with_boxes_in_input_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    rgb = render_label(SWEDISH, scale=3.0)  # 1260×1560: a phone-sized photo, downscaled to 640
    reading = LabelReader(max_side=640).read(rgb)
    assert reading.composition is not None, reading.texts
    assert reading.composition.fibres == (("wool", 70.0), ("polyamide", 30.0))
    assert (reading.brand, reading.brand_source) == ("Lindex", "list")
    brand_line = next(ln for ln in reading.lines if ln.text.lower() == "lindex")
    ys = [y for _, y in brand_line.box]
    assert 40 <= min(ys) and max(ys) <= 300, brand_line.box  # drawn at y = 60 … 230 in the 1560-px photo


def test_reads_an_upside_down_label_in_label_order(reader: LabelReader) -> None:
    lines = [("GANT", 60), ("SHELL: 100% COTTON", 24), ("LINING: 100% POLYESTER", 24), ("MADE IN INDIA", 20)]
    rgb = np.ascontiguousarray(render_label(lines)[::-1, ::-1])  # turned by 180°
    reading = reader.read(rgb)
    assert reading.composition is not None, reading.texts
    assert reading.composition.fibres == (("cotton", 100.0),)
    assert (reading.brand, reading.brand_source) == ("Gant", "list")
    assert reading.texts[0] == "GANT", reading.texts


@pytest.mark.parametrize("rgb", [np.full((240, 320, 3), 245, np.uint8),
                                 np.random.default_rng(0).integers(100, 110, (64, 64), dtype=np.uint8)],
                         ids=["blank-label", "grey-noise"])
def test_no_text_gives_an_empty_reading(reader: LabelReader, rgb: np.ndarray) -> None:
    reading = reader.read(rgb)
    assert reading.lines == []
    assert (reading.composition, reading.brand, reading.brand_source) == (None, None, None)
    assert reading.item_fields() == {"composition": None, "brand": None, "label_text": []}


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((0, 0, 3), np.uint8), "non-empty"),
    (np.zeros((10, 0, 3), np.uint8), "non-empty"),
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 4), np.uint8), r"H×W×3"),
    (np.zeros((2, 8, 8, 3), np.uint8), r"H×W×3"),
    ([[0, 0], [0, 0]], "array"),
    ("label.jpg", "array"),
    (None, "array"),
])
def test_bad_input_raises_value_error(bad, match: str) -> None:
    reader = LabelReader()
    with pytest.raises(ValueError, match=match):
        reader.read(bad)
    assert reader._engine is None  # checked before the OCR models load


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_side": 16}, "max_side"), ({"num_threads": 0}, "num_threads"), ({"min_score": 1.5}, "min_score"),
    ({"det_min_side": -1}, "det_min_side"),
])
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LabelReader(**kwargs)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        LabelReader(960)  # type: ignore[misc]


# ---------------------------------------------------------------------------------- parsing lines

def _lines(*specs: tuple[str, float]) -> list[LabelLine]:
    """Lines stacked top to bottom; ``(text, height)`` with score 0.95."""
    out, y = [], 0.0
    for text, hgt in specs:
        out.append(LabelLine(text=text, score=0.95, box=((0.0, y), (100.0, y), (100.0, y + hgt), (0.0, y + hgt))))
        y += hgt + 5
    return out


@pytest.mark.parametrize(("texts", "fibres", "section"), [
    (["ZARA", "80% WOOL", "20% POLYAMIDE", "MADE IN PORTUGAL"], (("wool", 80.0), ("polyamide", 20.0)), ""),
    # the same list in several languages: the first complete one
    (["80% WOOL", "20% POLYAMIDE", "80% LANA", "20% POLIAMIDA", "80% LAINE", "20% POLYAMIDE"],
     (("wool", 80.0), ("polyamide", 20.0)), ""),
    # a language we cannot name first, then English
    (["80% 羊毛", "20% 锦纶", "80% wool", "20% nylon"], (("wool", 80.0), ("polyamide", 20.0)), ""),
    # lining first on the label: the shell section still wins
    (["LINING:", "100% POLYESTER", "SHELL:", "60% COTTON", "40% POLYESTER"],
     (("cotton", 60.0), ("polyester", 40.0)), "shell"),
    (["Yttertyg: 70% Ull 30% Polyamid", "Foder: 100% Viskos"], (("wool", 70.0), ("polyamide", 30.0)), "yttertyg"),
    # OCR slips: glued words, "o" for 0, full-width percent sign
    (["1o0%BOMULL"], (("cotton", 100.0),), ""),
    (["95％ COTTON", "5％ ELASTANE"], (("cotton", 95.0), ("elastane", 5.0)), ""),
    # an incomplete first run loses to a complete one
    (["55% cotton", "MADE IN CHINA", "60% cotton 40% polyester"], (("cotton", 60.0), ("polyester", 40.0)), ""),
    # fibre names over several lines after the percentage
    (["100%", "POLYESTER"], (("polyester", 100.0),), ""),
])
def test_composition_from_lines(texts: list[str], fibres, section: str) -> None:
    comp = composition_from_lines(texts)
    assert comp is not None
    assert comp.fibres == fibres
    assert comp.section == section


@pytest.mark.parametrize("texts", [[], ["ZARA", "MADE IN PORTUGAL", "M"], ["Lindex", "Cubus"], ["100%", "?"]])
def test_no_composition_from_lines(texts: list[str]) -> None:
    assert composition_from_lines(texts) is None


@pytest.mark.parametrize(("text", "brand"), [
    ("ZARA", "Zara"), ("H&M", "H&M"), ("H & M", "H&M"), ("JACK&JONES", "Jack & Jones"), ("ZARA WOMAN", "Zara"),
    ("ZARAWOMAN", "Zara"), ("FJALLRAVEN", "Fjällräven"), ("Fjällräven", "Fjällräven"), ("HAGLOFS", "Haglöfs"),
    ("HUGO BOSS", "Hugo Boss"), ("POLO RALPH LAUREN", "Polo Ralph Lauren"), ("LEVI'S", "Levi's"),
    ("LEVIS", "Levi's"), ("Lindcx", "Lindex"), ("TIGER OF SWEDEN", "Tiger of Sweden"), ("&OTHER STORIES", "& Other Stories"),
    ("s.Oliver", "s.Oliver"), ("Made with love in a small studio", None), ("", None), ("GINA", None),
])
def test_match_brand(text: str, brand: str | None) -> None:
    assert match_brand(text, load_brands()) == brand


@pytest.mark.parametrize(("specs", "brand", "source"), [
    ([("KAPPAHL", 40), ("100% cotton", 20)], "KappAhl", "list"),
    ([("Vero Moda", 40), ("100% Polyester", 20)], "Vero Moda", "list"),  # "Moda" also abbreviates modal
    ([("COTTON CLUB", 40), ("POLYESTER", 50)], "COTTON CLUB", "heuristic"),  # a line of fibre names is no brand
    # care text that contains a brand name is no brand ("ONLY"), nor are origin, size and codes
    ([("DRY CLEAN ONLY", 30), ("MADE IN ITALY", 30), ("SIZE M", 30), ("RN 54867", 30), ("Atelier Nord", 22)],
     "Atelier Nord", "heuristic"),
    # a line that *is* a brand although its words look like care text
    ([("UNITED COLORS OF BENETTON", 30), ("100% cotton", 20)], "United Colors of Benetton", "list"),
    # no list brand: the most prominent remaining short line
    ([("small print", 12), ("NORDIC THREADS", 36), ("EUR 38", 40), ("30°", 40)], "NORDIC THREADS", "heuristic"),
    # a list brand beats a more prominent unknown line
    ([("AUTUMN COLLECTION", 50), ("Cubus", 20)], "Cubus", "list"),
    # nothing left after the exclusions
    ([("80% WOOL", 40), ("20% POLYAMIDE", 40), ("MADE IN CHINA", 30), ("40°", 20), ("XL", 50), ("0532/123/800", 20)],
     None, None),
    ([], None, None),
])
def test_brand_from_lines(specs, brand: str | None, source: str | None) -> None:
    assert brand_from_lines(_lines(*specs)) == (brand, source)


def test_brand_list_is_shipped_and_clean() -> None:
    brands = load_brands()
    assert 150 <= len(brands) <= 400
    for must in ("H&M", "Zara", "Lindex", "KappAhl", "Gina Tricot", "Fjällräven", "& Other Stories", "Marc O'Polo"):
        assert must in brands
    assert len({b.lower() for b in brands}) == len(brands)
    assert not any(b.startswith("#") for b in brands)


def test_item_fields_fit_the_item_record() -> None:
    comp = composition_from_lines(["80% wool", "20% polyamide"])
    reading = LabelReading(lines=_lines(("ZARA", 30), ("80% wool", 10), ("20% polyamide", 10)), composition=comp,
                           brand="Zara", brand_source="list", timing_ms=1.0)
    fields = reading.item_fields()
    item = empty_item("x", [])
    assert set(fields) <= set(item)
    assert fields == {
        "composition": {"text": "80% wool 20% polyamide",
                        "fibres": [{"fibre": "wool", "percent": 80.0}, {"fibre": "polyamide", "percent": 20.0}],
                        "main_fibre": "wool"},
        "brand": "Zara",
        "label_text": ["ZARA", "80% wool", "20% polyamide"],
    }


@pytest.mark.parametrize(("box", "height"), [
    (((0, 0), (50, 0), (50, 10), (0, 10)), 10.0),
    (((0, 0), (30, 40), (22, 46), (-8, 6)), 10.0),  # rotated
    ((), 0.0),
])
def test_line_height(box, height: float) -> None:
    line = LabelLine(text="x", score=0.5, box=box)
    assert line.height == pytest.approx(height)
    assert line.prominence == pytest.approx(height * 0.5)
