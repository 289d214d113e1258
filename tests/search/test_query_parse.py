"""Query understanding (issue 27): words → category, colours, pattern, material (taxonomy ids)."""

from __future__ import annotations

import pytest

from fashionlens.search.query import ParsedQuery, parse_query, vocabulary
from fashionlens.taxonomy import load_taxonomy

FOOTWEAR = ["trainers", "boots", "flats", "sandals", "heels"]


@pytest.mark.parametrize(("text", "understood", "rest"), [
    ("red dress", {"category": "dresses", "colours": ["red"]}, ""),
    ("Red Dresses", {"category": "dresses", "colours": ["red"]}, ""),
    ("black and white striped sweater",
     {"category": "sweaters", "colours": ["black", "white"], "pattern": "striped"}, ""),
    ("black & white stripy jumper", {"category": "sweaters", "colours": ["black", "white"], "pattern": "striped"}, ""),
    ("red, white and blue t-shirt", {"category": "t-shirts", "colours": ["red", "white", "blue"]}, ""),
    ("red or blue t shirt", {"category": "t-shirts", "colours": ["red", "blue"], "colour_match": "any"}, ""),
    ("navy blue wool jumper", {"category": "sweaters", "colours": ["blue"], "material": "wool"}, ""),
    ("gray hoodies", {"category": "hoodies", "colours": ["grey"]}, ""),
    ("dark green leather jacket", {"category": "coats-jackets", "colours": ["green"], "material": "leather"}, ""),
    ("black leather boots", {"category": "boots", "colours": ["black"], "material": "leather"}, ""),
    ("denim jacket", {"category": "coats-jackets", "material": "cotton"}, ""),
    ("blue jeans", {"category": "jeans", "colours": ["blue"]}, ""),
    ("floral maxi dress", {"category": "dresses", "pattern": "floral"}, "maxi"),
    ("checked shirt", {"category": "shirts", "pattern": "checked"}, ""),
    ("plaid flannel shirt", {"category": "shirts", "pattern": "checked"}, ""),
    ("polka-dot blouse", {"category": "blouses", "pattern": "polka-dots"}, ""),
    ("animal print skirt", {"category": "skirts", "pattern": "animal-print"}, ""),
    ("tie-dye hoodie", {"category": "hoodies", "pattern": "tie-dyed"}, ""),
    ("no pattern cardigan", {"category": "cardigans", "pattern": "plain"}, ""),
    ("multi-coloured knitwear", {"category": ["sweaters", "cardigans"], "colours": ["multicolour"]}, ""),
    ("white sneakers", {"category": "trainers", "colours": ["white"]}, ""),
    ("shoes", {"category": FOOTWEAR}, ""),
    ("pants", {"category": ["trousers", "jeans"]}, ""),
    ("blazer", {"category": "formal-jackets"}, ""),
    ("suit jacket", {"category": "formal-jackets"}, ""),  # the longer phrase wins over "jacket"
    ("button-down shirt", {"category": "shirts"}, ""),
    ("tank top", {"category": "tanks"}, ""),
    ("long-sleeved crew-neck jumper, light grey", {"category": "sweaters", "colours": ["grey"]},
     "long sleeved crew neck"),
    ("shorts with short sleeves", {"category": "shorts"}, "with short sleeves"),  # "short" is no garment
    ("not red shoes", {"category": FOOTWEAR}, "not red"),
    ("polka dot blouse without stripes", {"category": "blouses", "pattern": "polka-dots"}, "without stripes"),
    ("something cosy for autumn", {}, "something cosy for autumn"),
    ("", {}, ""),
])
def test_parse_table(text: str, understood: dict, rest: str) -> None:
    parsed = parse_query(text)
    assert isinstance(parsed, ParsedQuery) and parsed.text == text
    assert parsed.understood() == understood
    assert parsed.rest == rest
    assert parsed.empty == (not understood)


def test_parsed_fields_and_phrases() -> None:
    p = parse_query("Light blue and white striped cotton shirt")
    assert p.categories == ("shirts",) and p.colours == ("blue", "white") and not p.any_colour
    assert p.patterns == ("striped",) and p.materials == ("cotton",)
    assert p.phrases == (("light blue", "colours"), ("white", "colours"), ("striped", "patterns"),
                         ("cotton", "materials"), ("shirt", "categories"))
    assert p.index_filters() == {"category": ["shirts"], "colours": ["blue", "white"], "pattern": ["striped"],
                                 "material": ["cotton"]}


def test_match_against_stored_metadata() -> None:
    p = parse_query("black and white striped wool sweater")
    assert p.match("sweaters", {"colours": ["white", "black", "grey"], "pattern": "striped", "material": "wool"}) == {
        "category": 1.0, "colours": 1.0, "pattern": 1.0, "material": 1.0}
    assert p.match("cardigans", {"colours": ["black"], "pattern": "plain"}) == {
        "category": 0.0, "colours": 0.5, "pattern": 0.0, "material": 0.0}
    any_of = parse_query("red or blue dress")
    assert any_of.match("dresses", {"colours": "blue"})["colours"] == 1.0
    assert parse_query("red dress").match(None, {}) == {"category": 0.0, "colours": 0.0}
    assert parse_query("maxi").match("dresses", {"colours": ["red"]}) == {}


def test_vocabulary_covers_the_taxonomy_without_ambiguity() -> None:
    vocab = vocabulary()  # raises on a phrase naming two fields or an id outside the taxonomy
    tax = load_taxonomy()
    for category in tax.categories:
        assert parse_query(category).categories[:1] == (category,), category
    for field, group in (("colours", "colours"), ("patterns", "pattern"), ("materials", "material")):
        for value in tax.attribute(group).values:
            assert value in getattr(parse_query(value), field), value
    assert vocab[("jumpers",)] == ("categories", ("sweaters",))  # synonyms get a plural
    assert ("short",) not in vocab and ("flat",) not in vocab and ("vest",) not in vocab
