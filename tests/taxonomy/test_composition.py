"""Care-label fibre compositions → taxonomy materials, on hand-written labels and the RISE set."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from fashionlens.taxonomy import load_taxonomy
from fashionlens.taxonomy.composition import (
    composition_candidates,
    composition_coverage,
    fibre_of,
    main_fibre,
    parse_composition,
)

RISE = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "rise" / "garments.jsonl"

log = logging.getLogger(__name__)

CASES: list[tuple[str | None, tuple[tuple[str, float], ...] | None]] = [
    ("100%cotton", (("cotton", 100.0),)),
    ("80% wool, 20% polyamide", (("wool", 80.0), ("polyamide", 20.0))),
    ("100% Poly", (("polyester", 100.0),)),
    ("Wolle 80% Polyamid 20%", (("wool", 80.0), ("polyamide", 20.0))),
    ("80% Bomull 20% Polyester", (("cotton", 80.0), ("polyester", 20.0))),
    ("Shell: 73% Cotton, 11% Polyester. Lining: 100% Polyester", (("cotton", 73.0), ("polyester", 11.0))),
    ("lining: 100% viscose, exterior: 80% wool, 20% cotton", (("wool", 80.0), ("cotton", 20.0))),
    ("100% knitted acrylic", (("acrylic", 100.0),)),
    ("65% laine 35% soie", (("wool", 65.0), ("silk", 35.0))),
    ("34%polyester 66%viscose", (("viscose", 66.0), ("polyester", 34.0))),
    ("100 % Baumwolle", (("cotton", 100.0),)),
    ("52,5% wool 47,5% polyester", (("wool", 52.5), ("polyester", 47.5))),
    ("70% Viskos 30% Nylon", (("viscose", 70.0), ("polyamide", 30.0))),
    ("50% cotton 50% cotton", (("cotton", 100.0),)),
    ("Polyester", (("polyester", 100.0),)),
    ("60% cotton 40% polyester Lining 100% polyester", (("cotton", 60.0), ("polyester", 40.0))),
    ("100% acry", (("acrylic", 100.0),)),
    ("90% lambswool 10% cashmere", (("wool", 90.0), ("cashmere", 10.0))),
    # runs adding up to 100 without headers: the first is the shell (or the first language)
    ("77% visc, 23% poly. 57% poly, 43% cott", (("viscose", 77.0), ("polyester", 23.0))),
    ("100%polyester/40%cotton 60%polyester", (("polyester", 100.0),)),
    ("80% 羊毛 20% 锦纶 80% wool 20% polyamide", (("wool", 80.0), ("polyamide", 20.0))),
    # more section headers
    ("Exterior: 88% wool, 12% polyester; Interior: 100% polyester", (("wool", 88.0), ("polyester", 12.0))),
    ("Front side 100%Polyester, Back side 100%Akryl", (("polyester", 100.0),)),
    ("Obermaterial: 100% Baumwolle Futter: 100% Polyester", (("cotton", 100.0),)),
    ("Yttertyg: 70% Ull 30% Polyamid Foder: 100% Viskos", (("wool", 70.0), ("polyamide", 30.0))),
    ("Shell: 100% Polyester, Garniture: 98% Cotton, 2% Elastane", (("polyester", 100.0),)),
    # typing and OCR slips
    ("55% polyester, 45%% cotton", (("polyester", 55.0), ("cotton", 45.0))),
    ("50%Polyester,45Acryl,5%Ull", (("polyester", 50.0), ("acrylic", 45.0), ("wool", 5.0))),
    ("1oo% bomull", (("cotton", 100.0),)),
    ("70% UII 30% POLYAMID", (("wool", 70.0), ("polyamide", 30.0))),  # OCR: "l" read as "I"
    ("55% cotton 60% cotton 40% polyester", (("cotton", 55.0),)),  # an incomplete run ends at the overshoot
    ("８０％ wool ２０％ polyamide", (("wool", 80.0), ("polyamide", 20.0))),
    ("60% poliéster 40% algodón", (("polyester", 60.0), ("cotton", 40.0))),
    ("?", None),
    ("", None),
    ("Unknown", None),
    ("-", None),
    ("fur", None),
    ("Unknown, no match. Lining: 51% polyester, 49% acrylic", None),  # only the lining is known
    ("Lindex", None),  # a brand, not a fibre
    (None, None),
]


@pytest.mark.parametrize(("text", "fibres"), CASES, ids=[repr(t) for t, _ in CASES])
def test_parse_composition(text: str | None, fibres) -> None:
    comp = parse_composition(text)
    if fibres is None:
        assert comp is None
        assert main_fibre(text) is None
        return
    assert comp is not None
    assert comp.fibres == fibres
    assert comp.text == text
    assert comp.main_fibre == fibres[0][0]
    assert main_fibre(text) == fibres[0][0]


def test_every_material_is_a_taxonomy_value() -> None:
    materials = set(load_taxonomy().attribute("material").values)
    for text, fibres in CASES:
        for m, _ in fibres or ():
            assert m in materials


@pytest.mark.parametrize(("word", "material"), [
    ("Bomull", "cotton"), ("ULL", "wool"), ("Wolle", "wool"), ("acr", "acrylic"), ("viscosa", "viscose"),
    ("Elasthan", "elastane"), ("polyamid", "polyamide"), ("feather", None), ("xyz", None), ("", None),
    ("side", None), ("Front", None), ("bomuld", "cotton"), ("okänt", None), ("UII", "wool"), ("POLYESTFR", "polyester"),
])
def test_fibre_of(word: str, material: str | None) -> None:
    assert fibre_of(word) == material


@pytest.mark.parametrize(("text", "unnamed", "total"), [
    ("90% Nylon 10% Cont?", 10.0, 100.0),
    ("45% viscose, 30% cotton, 25% lurex", 25.0, 100.0),
    ("95% akryl 5% okänt", 5.0, 100.0),
    ("80% wool, 20% polyamide", 0.0, 100.0),
    ("78%acrylic", 0.0, 78.0),
])
def test_unnamed_share_counts_in_the_total(text: str, unnamed: float, total: float) -> None:
    comp = parse_composition(text)
    assert comp is not None
    assert comp.unnamed_percent == pytest.approx(unnamed)
    assert comp.total_percent == pytest.approx(total)


def test_composition_candidates_keep_every_section_in_order() -> None:
    cands = composition_candidates("Shell: 80% wool 20% polyamide. Lining: 100% viscose. 100% cotton")
    assert [(c.section, c.fibres) for c in cands] == [
        ("shell", (("wool", 80.0), ("polyamide", 20.0))),
        ("lining", (("viscose", 100.0),)),
        ("lining", (("cotton", 100.0),)),
    ]
    assert [c.is_shell for c in cands] == [True, False, False]
    assert composition_candidates("no fibres here") == []
    assert composition_candidates(None) == []


def test_composition_coverage_counts() -> None:
    cov = composition_coverage(["100% cotton", "90% nylon 10% cont?", "56% cotton 41% poly", "?", "", None, "?"])
    assert (cov["strings"], cov["non_empty"], cov["parsed"], cov["sum_100"]) == (7, 5, 3, 2)
    assert cov["parse_rate"] == pytest.approx(3 / 5)
    assert cov["unparsed"] == [{"text": "?", "count": 2}]
    assert cov["sum_not_100"] == [{"text": "56% cotton 41% poly", "count": 1, "total": 97.0}]
    empty = composition_coverage([])
    assert (empty["strings"], empty["parse_rate"], empty["unparsed"]) == (0, 0.0, [])


# Real RISE label strings that clearly name a main fibre but are not parsed (or parsed wrongly) yet.
KNOWN_MISSES = [
    ("75 viscose, 22% polyester, 3% elastane", {"viscose"}),  # "%" missing after the first number
    ("63& acrylic, 37% cotton", {"acrylic"}),  # "&" typed for "%"
    ("Shell/Lining: 100% Nylon. Filling: 90% Down, 10% Feather", {"polyamide"}),  # "Shell/Lining:" header
    ("Shell, lining 100% polyester. Filling 100% dowm feathers", {"polyester"}),
    ("35% WO, 35%CO, 15%Pes, 10%PC, 5%Af", {"wool", "cotton"}),  # ISO 2076 codes WO/CO: gives polyester
]


@pytest.mark.parametrize(("text", "expected"), KNOWN_MISSES, ids=[t for t, _ in KNOWN_MISSES])
def test_known_rise_misses(text: str, expected: set[str]) -> None:
    assert main_fibre(text) in expected


@pytest.mark.data
def test_rise_materials_parse(record_property) -> None:
    if not RISE.is_file():
        pytest.skip(f"RISE data set not found at {RISE}")
    rows = [json.loads(line) for line in RISE.read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) == 1406
    materials = set(load_taxonomy().attribute("material").values)
    parsed = 0
    failed: Counter[str] = Counter()
    for row in rows:
        fibre = main_fibre(row.get("material"))
        if fibre is None:
            failed[str(row.get("material"))] += 1
        else:
            assert fibre in materials
            parsed += 1
    record_property("rise_material_parsed", parsed)
    print(f"RISE materials parsed to a main fibre: {parsed} of {len(rows)}")
    log.info("RISE materials: %d of %d parse to a main fibre; unparsed: %s", parsed, len(rows), failed.most_common())
    assert parsed >= 1250, f"only {parsed} of {len(rows)} parse; unparsed: {failed.most_common(20)}"


@pytest.mark.data
def test_rise_composition_coverage(record_property) -> None:
    """Measured 2025 on all 1,406 RISE rows: 1,310 non-empty, 1,276 parse (97.4 %; the 34 left are
    "?", "Unknown", "-", "Missing", "fur" …), 1,264 add up to 100 ± 1 (96.5 %; the rest are typos on
    the label such as "56% Cotton 41% Poly"). The asserts allow one percentage point less."""
    if not RISE.is_file():
        pytest.skip(f"RISE data set not found at {RISE}")
    rows = [json.loads(line) for line in RISE.read_text("utf-8").splitlines() if line.strip()]
    cov = composition_coverage(row.get("material") for row in rows)
    record_property("rise_composition_coverage", {k: v for k, v in cov.items() if not isinstance(v, list)})
    assert (cov["strings"], cov["non_empty"]) == (1406, 1310)
    assert cov["parse_rate"] >= 0.964, cov["unparsed"]
    assert cov["sum_100_rate"] >= 0.955, cov["sum_not_100"]
