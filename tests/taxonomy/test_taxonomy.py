"""The packaged taxonomy and every source mapping load, agree with each other and fail loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashionlens.taxonomy import TaxonomyError, available_mappings, load_mapping, load_taxonomy
from fashionlens.taxonomy._mapping import _parse_label

CCP_LABELS_JSON = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ccp" / "labels.json"

EXPECTED_CATEGORIES = {
    "shirts": "upper-body",
    "formal-jackets": "upper-body",
    "t-shirts": "upper-body",
    "hoodies": "upper-body",
    "tanks": "upper-body",
    "camis": "upper-body",
    "sweaters": "upper-body",
    "cardigans": "upper-body",
    "blouses": "upper-body",
    "coats-jackets": "upper-body",
    "shawls-capes-ponchos": "upper-body",
    "shorts": "lower-body",
    "skirts": "lower-body",
    "jeans": "lower-body",
    "trousers": "lower-body",
    "dresses": "full-body",
    "jumpsuits": "full-body",
    "playsuits": "full-body",
    "trainers": "footwear",
    "boots": "footwear",
    "flats": "footwear",
    "sandals": "footwear",
    "heels": "footwear",
    "hats": "headwear",
    "bags": "bag",
}

# Number of labels each source defines (its full label set, mapped or not).
SOURCE_LABEL_COUNTS = {
    "clothing": 20,
    "ccp": 59,
    "deepfashion2": 13,
    "modanet": 13,
    "deepfashion": 50,
    "fashionpedia": 46,
    "imaterialist": 46,
}


# --- the taxonomy -------------------------------------------------------------------------


def test_taxonomy_loads_with_its_25_categories_in_order() -> None:
    tax = load_taxonomy()
    assert tax.version >= 1
    assert tax.categories == tuple(EXPECTED_CATEGORIES)
    assert tax.category_object_type == EXPECTED_CATEGORIES


def test_every_object_type_has_a_category() -> None:
    tax = load_taxonomy()
    assert tax.object_types == ("upper-body", "lower-body", "full-body", "footwear", "bag", "headwear")
    for ot in tax.object_types:
        assert tax.categories_of(ot), ot


def test_attribute_groups() -> None:
    tax = load_taxonomy()
    assert set(tax.attributes) == {"pattern", "colours", "material", "sleeve", "neckline", "fit"}
    colours = tax.attribute("colours")
    assert colours.kind == "multi"
    # every colour but the predicted-only 'multicolour' has a reference RGB
    assert set(colours.rgb) == set(colours.values) - {"multicolour"}
    assert tax.attribute("sleeve").values == ("sleeveless", "short", "long")


# --- the mappings -------------------------------------------------------------------------


def test_all_known_sources_are_packaged() -> None:
    assert set(SOURCE_LABEL_COUNTS) <= set(available_mappings())


@pytest.mark.parametrize("source", available_mappings())
def test_mapping_loads_and_is_consistent(source: str) -> None:
    tax = load_taxonomy()
    mapping = load_mapping(source)
    assert mapping.source == source
    assert mapping.description
    assert mapping.labels
    for name, label in mapping.labels.items():
        assert label.source_label == name
        if label.is_mapped:
            assert label.object_type in tax.object_types, name
            assert all(tax.object_type_of(c) == label.object_type for c in label.categories), name
            assert len(set(label.categories)) == len(label.categories), f"{name}: repeated category"
        else:
            assert label.unmapped and label.unmapped.strip(), f"{name}: unmapped needs a reason"
            assert not label.categories and label.object_type is None


@pytest.mark.parametrize(("source", "count"), sorted(SOURCE_LABEL_COUNTS.items()))
def test_mapping_lists_every_source_label(source: str, count: int) -> None:
    assert len(load_mapping(source).labels) == count


@pytest.mark.data
def test_ccp_labels_match_the_dataset_file() -> None:
    if not CCP_LABELS_JSON.is_file():
        pytest.skip(f"{CCP_LABELS_JSON} not present")
    names = json.loads(CCP_LABELS_JSON.read_text("utf-8"))
    assert len(names) == 59
    assert set(load_mapping("ccp").labels) == set(names)


def test_imaterialist_2019_maps_like_fashionpedia() -> None:
    fp, im = load_mapping("fashionpedia"), load_mapping("imaterialist")
    assert list(im.labels) == list(fp.labels)
    for name in fp.labels:
        a, b = fp.labels[name], im.labels[name]
        assert (a.categories, a.object_type, a.attributes, a.unmapped) == (
            b.categories,
            b.object_type,
            b.attributes,
            b.unmapped,
        ), name


def test_fashionpedia_parts_are_unmapped() -> None:
    parts = ["hood", "collar", "lapel", "epaulette", "sleeve", "pocket", "neckline", "buckle", "zipper",
             "applique", "bead", "bow", "flower", "fringe", "ribbon", "rivet", "ruffle", "sequin", "tassel"]
    fp = load_mapping("fashionpedia")
    assert list(fp.labels)[27:] == parts
    for p in parts:
        assert fp.resolve(p).unmapped == "garment part, not a garment"


@pytest.mark.parametrize(
    ("source", "label", "categories", "attributes"),
    [
        ("deepfashion2", "short sleeve dress", ("dresses",), {"sleeve": "short"}),
        ("deepfashion2", "sling", ("camis",), {"sleeve": "sleeveless"}),
        ("modanet", "boots", ("boots",), {}),
        ("deepfashion", "Romper", ("playsuits",), {}),
        ("fashionpedia", "shirt, blouse", ("shirts", "blouses"), {}),
    ],
)
def test_sample_resolutions(source: str, label: str, categories: tuple[str, ...], attributes: dict) -> None:
    m = load_mapping(source).resolve(label)
    assert m.categories == categories
    assert m.attributes == attributes


@pytest.mark.parametrize("source", [s for s in available_mappings() if "patterns" in load_mapping(s).tables])
def test_pattern_tables_use_the_taxonomy_vocabulary(source: str) -> None:
    values = set(load_taxonomy().attribute("pattern").values)
    table = load_mapping(source).table("patterns")
    assert table
    for name, value in table.items():
        assert value is None or value in values, f"{source} pattern {name!r} -> {value!r}"


def test_fashionpedia_pattern_table_covers_the_24_textile_patterns() -> None:
    table = load_mapping("fashionpedia").table("patterns")
    assert len(table) == 24
    assert table["plain (pattern)"] == "plain"
    assert table["stripe"] == "striped"


# --- errors -------------------------------------------------------------------------------


def _tax_call(kind: str, value: str) -> None:
    tax = load_taxonomy()
    if kind == "category":
        tax.category_index(value)
    elif kind == "object_type":
        tax.object_type_index(value)
    elif kind == "group":
        tax.attribute(value)
    elif kind.startswith("attr:"):
        tax.attribute(kind[5:]).index(value)
    elif kind.startswith("mapping:"):
        load_mapping(kind[8:]).resolve(value)
    elif kind == "source":
        load_mapping(value)
    else:  # pragma: no cover - table typo
        raise ValueError(f"unknown kind {kind!r}")


@pytest.mark.parametrize(
    ("kind", "value", "suggestion"),
    [
        ("category", "shirt", "shirts"),
        ("category", "tshirts", "t-shirts"),
        ("category", "coats", "hats"),  # closest by spelling, not by meaning
        ("object_type", "upperbody", "upper-body"),
        ("group", "colors", "colours"),
        ("attr:pattern", "strped", "striped"),
        ("attr:colours", "gray", "grey"),
        ("attr:sleeve", "sleveless", "sleeveless"),
        ("attr:neckline", "v neck", "v-neck"),
        ("mapping:modanet", "skirts", "skirt"),
        ("mapping:deepfashion2", "long sleeve outerwear", "long sleeve outwear"),
        ("source", "deep-fashion2", "deepfashion2"),
    ],
)
def test_unknown_names_raise_with_a_suggestion(kind: str, value: str, suggestion: str) -> None:
    with pytest.raises(TaxonomyError, match=f"Did you mean '{suggestion}'"):
        _tax_call(kind, value)


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy().category_index("zzzz")
    assert "Did you mean" not in str(err.value)
    assert "expected one of" in str(err.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"category": "shirts", "colour": "red"}, "unknown keys"),
        ({"category": "jeans", "object_type": "upper-body"}, "disagrees"),
        ({"categories": ["jeans", "dresses"]}, "needs an object_type"),
        ({}, "needs an object_type"),
        ({"category": "shirt"}, "Did you mean 'shirts'"),
        ({"object_type": "upperbody"}, "Did you mean 'upper-body'"),
        ({"category": "shirts", "attributes": {"sleeve": "longg"}}, "Did you mean 'long'"),
        ({"category": "shirts", "attributes": {"sleeves": "long"}}, "Did you mean 'sleeve'"),
        ("shirts", "must be a mapping"),
    ],
)
def test_malformed_mapping_entries_raise(spec: object, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        _parse_label(load_taxonomy(), "test-source", "Some Label", spec)  # type: ignore[arg-type]


def test_well_formed_mapping_entries_parse() -> None:
    tax = load_taxonomy()
    one = _parse_label(tax, "s", "Tee", {"category": "t-shirts", "attributes": {"sleeve": "short"}})
    assert (one.categories, one.object_type, one.attributes) == (("t-shirts",), "upper-body", {"sleeve": "short"})
    coarse = _parse_label(tax, "s", "Pants", {"categories": ["jeans", "trousers"], "object_type": "lower-body"})
    assert coarse.categories == ("jeans", "trousers") and coarse.object_type == "lower-body"
    off = _parse_label(tax, "s", "Skin", {"unmapped": "body", "note": "n"})
    assert not off.is_mapped and off.unmapped == "body" and off.note == "n"
