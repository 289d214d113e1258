"""Query understanding for text search (issue 27): the words of a query → soft constraints.

``parse_query("black and white striped wool sweater")`` →
``ParsedQuery(categories=("sweaters",), colours=("black", "white"), patterns=("striped",),
materials=("wool",), rest="")``. The text search (:meth:`fashionlens.search.catalogue.GarmentSearcher.query_text`)
re-ranks the nearest garments of the whole query by how well their stored metadata (the tagger's
category, colours, pattern, material) agree with these fields (:meth:`ParsedQuery.match`,
weighted by :class:`MatchWeights`), or, with ``strict``, keeps only the garments that agree.

Vocabulary (built once, :func:`vocabulary`):

* **category** — every taxonomy category id, with hyphens read as spaces and in singular and plural
  (``dresses``/``dress``, ``t-shirts``/``t shirt``; not for the plural-only nouns in
  :data:`PLURAL_ONLY`), the alignment captions' nouns (:data:`fashionlens.search.captions.CATEGORY_NOUNS`,
  e.g. ``jumper``, ``blazer``, ``sneakers``) and :data:`CATEGORY_SYNONYMS` (each also in plural).
  A word may name several categories (``shoes`` → every footwear category, ``jacket`` →
  ``coats-jackets``): they are alternatives.
* **colours** — the taxonomy colour ids, :data:`COLOUR_SYNONYMS` (``navy`` → blue, ``gray`` → grey …)
  and each base colour after a shade word (:data:`SHADES`: ``light blue``, ``dark green``). Colours
  joined by ``and``, commas or nothing are all wanted (``black and white`` = both); joined by ``or``,
  any of them.
* **pattern** — the taxonomy pattern ids (hyphens as spaces) and :data:`PATTERN_SYNONYMS`
  (``stripes``, ``stripy`` → striped; ``flowery`` → floral; ``checkered``, ``plaid`` → checked …).
* **material** — the taxonomy materials (main fibre) and :data:`MATERIAL_SYNONYMS` (``woollen``,
  ``merino`` → wool; ``denim`` → cotton; ``nylon`` → polyamide; ``suede`` → leather …).

Matching is case-insensitive on words (letters and digits; ``&`` reads as ``and``), longest phrase
first. A phrase right after a negation (:data:`NEGATIONS`: ``not red``, ``without stripes``) is not
a constraint. Words that name nothing stay in :attr:`ParsedQuery.rest`. Ambiguous words are left out
on purpose: ``vest`` (a tank top in British English, a waistcoat in American), ``khaki``, ``gold``,
``jersey`` (a fabric or a sweater), ``print`` (which pattern?).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["CATEGORY_SYNONYMS", "COLOUR_SYNONYMS", "DEFAULT_WEIGHTS", "MATERIAL_SYNONYMS", "NEGATIONS",
           "PATTERN_SYNONYMS", "PLURAL_ONLY", "SHADES", "MatchWeights", "ParsedQuery", "parse_query", "vocabulary"]

#: extra category words (singular; a plural is added) → taxonomy categories (alternatives)
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    # tops
    "button down": ("shirts",), "button up": ("shirts",), "dress shirt": ("shirts",), "dress shoe": ("flats", "heels"), "flannel shirt": ("shirts",), "polo": ("t-shirts",),
    "polo shirt": ("t-shirts",), "tee shirt": ("t-shirts",), "tshirt": ("t-shirts",), "tee": ("t-shirts",),
    "hooded sweatshirt": ("hoodies",), "hooded top": ("hoodies",), "hoody": ("hoodies",),
    "tank top": ("tanks",), "vest top": ("tanks",), "singlet": ("tanks",), "camisole": ("camis",),
    "cami top": ("camis",), "jumper": ("sweaters",), "pullover": ("sweaters",), "sweatshirt": ("sweaters",),
    "knitted pullover": ("sweaters",), "knitwear": ("sweaters", "cardigans"), "blouse": ("blouses",),
    "top": ("t-shirts", "shirts", "blouses", "tanks", "camis"),
    # outerwear
    "coat": ("coats-jackets",), "jacket": ("coats-jackets",), "parka": ("coats-jackets",),
    "anorak": ("coats-jackets",), "puffer": ("coats-jackets",), "raincoat": ("coats-jackets",),
    "trench": ("coats-jackets",), "trench coat": ("coats-jackets",), "bomber": ("coats-jackets",),
    "windbreaker": ("coats-jackets",), "gilet": ("coats-jackets",), "outerwear": ("coats-jackets",),
    "blazer": ("formal-jackets",), "suit jacket": ("formal-jackets",), "sport coat": ("formal-jackets",),
    "shawl": ("shawls-capes-ponchos",), "cape": ("shawls-capes-ponchos",), "poncho": ("shawls-capes-ponchos",),
    # bottoms and one-pieces
    "pants": ("trousers", "jeans"), "slacks": ("trousers",), "chinos": ("trousers",), "joggers": ("trousers",),
    "leggings": ("trousers",), "denim jeans": ("jeans",), "bottoms": ("shorts", "skirts", "jeans", "trousers"),
    "gown": ("dresses",), "frock": ("dresses",), "dungarees": ("jumpsuits",), "overalls": ("jumpsuits",),
    "romper": ("playsuits",),
    # footwear, bags, hats
    "shoe": ("trainers", "boots", "flats", "sandals", "heels"),
    "footwear": ("trainers", "boots", "flats", "sandals", "heels"),
    "sneaker": ("trainers",), "running shoe": ("trainers",), "flat shoe": ("flats",), "loafer": ("flats",),
    "ballet flat": ("flats",), "pump": ("heels",), "stiletto": ("heels",), "high heel": ("heels",),
    "heeled shoe": ("heels",), "flip flop": ("sandals",), "handbag": ("bags",), "purse": ("bags",),
    "backpack": ("bags",), "tote": ("bags",), "cap": ("hats",), "beanie": ("hats",),
}
#: category words used only as written (no singular is derived: "short" is a sleeve, "flat" a shape)
PLURAL_ONLY = frozenset({"jeans", "shorts", "trousers", "pants", "flats", "leggings", "chinos", "joggers",
                         "slacks", "dungarees", "overalls", "bottoms", "footwear", "knitwear", "outerwear"})

#: colour words → taxonomy colour
COLOUR_SYNONYMS: dict[str, str] = {
    "gray": "grey", "charcoal": "grey", "silver": "grey", "navy": "blue", "navy blue": "blue", "denim blue": "blue",
    "cobalt": "blue", "indigo": "blue", "burgundy": "red", "maroon": "red", "crimson": "red", "scarlet": "red",
    "wine": "red", "cherry": "red", "fuchsia": "pink", "magenta": "pink", "rose": "pink", "coral": "orange",
    "rust": "orange", "mustard": "yellow", "olive": "green", "emerald": "green", "mint": "green",
    "teal": "turquoise", "aqua": "turquoise", "cyan": "turquoise", "violet": "purple", "lilac": "purple",
    "lavender": "purple", "mauve": "purple", "plum": "purple", "cream": "beige", "ivory": "white",
    "off white": "white", "camel": "beige", "sand": "beige", "nude": "beige", "chocolate": "brown",
    "multicolor": "multicolour", "multicoloured": "multicolour", "multicolored": "multicolour",
    "multi colour": "multicolour", "multi color": "multicolour", "multi coloured": "multicolour",
    "multi colored": "multicolour", "rainbow": "multicolour", "colourful": "multicolour", "colorful": "multicolour",
}
#: shade words: "<shade> <colour>" is that colour ("light blue" → blue)
SHADES = ("light", "dark", "pale", "bright", "deep", "baby", "sky", "royal", "hot", "neon", "pastel")

#: pattern words → taxonomy pattern
PATTERN_SYNONYMS: dict[str, str] = {
    "stripe": "striped", "stripes": "striped", "stripy": "striped", "stripey": "striped", "pinstripe": "striped",
    "pinstriped": "striped", "breton": "striped", "flower": "floral", "flowers": "floral", "flowery": "floral",
    "flowered": "floral", "florals": "floral", "check": "checked", "checks": "checked", "checkered": "checked",
    "chequered": "checked", "checkerboard": "checked", "gingham": "checked", "plaid": "checked",
    "houndstooth": "checked", "solid": "plain", "solid colour": "plain", "solid color": "plain",
    "no pattern": "plain", "unpatterned": "plain", "patternless": "plain", "polka dot": "polka-dots",
    "polka dotted": "polka-dots", "dotted": "polka-dots", "spot": "spots", "spotted": "spots", "spotty": "spots",
    "leopard": "animal-print", "leopard print": "animal-print", "zebra": "animal-print", "snakeskin": "animal-print",
    "snake print": "animal-print", "camo": "camouflage", "colour block": "colourblock", "color block": "colourblock",
    "colorblock": "colourblock", "color blocked": "colourblock", "colour blocked": "colourblock",
    "nordic": "fair-isle", "tie dye": "tie-dyed", "tiedye": "tie-dyed", "dip dye": "dip-dyed", "zig zag": "zigzag",
    "chevron": "zigzag", "hawaiian": "tropical", "logo": "graphic", "slogan": "graphic", "grid": "grid-print",
    "aztec": "ethnic", "acid wash": "washed", "stonewashed": "washed", "geometrical": "geometric",
}

#: material words → taxonomy material (main fibre)
MATERIAL_SYNONYMS: dict[str, str] = {
    "woollen": "wool", "woolen": "wool", "woolly": "wool", "merino": "wool", "lambswool": "wool",
    "tweed": "wool", "denim": "cotton", "nylon": "polyamide", "rayon": "viscose", "spandex": "elastane",
    "lycra": "elastane", "tencel": "lyocell", "suede": "leather", "faux leather": "polyurethane",
    "vegan leather": "polyurethane", "pleather": "polyurethane", "pu": "polyurethane", "silky": "silk",
    "fleece": "polyester", "poly": "polyester",
}

#: a phrase right after one of these is not a constraint ("not red", "without stripes")
NEGATIONS = frozenset({"not", "no", "without", "non", "never", "except"})

_CONNECTORS = ("and", "or")
_WORD = re.compile(r"[a-z0-9]+")
_FIELD_ORDER = ("categories", "colours", "patterns", "materials")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("&", " and "))


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _singular(word: str) -> str | None:
    if word in PLURAL_ONLY or not word.endswith("s") or word.endswith("ss"):
        return None
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    return word[:-1]


def _forms(phrase: str) -> set[tuple[str, ...]]:
    """The phrase as words, and with its last word in singular and plural."""
    words = _words(phrase)
    if not words:
        return set()
    out = {tuple(words)}
    last = words[-1]
    if last not in PLURAL_ONLY:
        one = _singular(last)
        out.add((*words[:-1], one) if one else (*words[:-1], _plural(last)))
    return out


@lru_cache(maxsize=1)
def vocabulary() -> dict[tuple[str, ...], tuple[str, tuple[str, ...]]]:
    """Phrase (tuple of words) → ``(field, taxonomy ids)``; ``field`` is one of ``categories``,
    ``colours``, ``patterns``, ``materials``. Raises ``ValueError`` when a phrase names two fields
    (the tables must stay unambiguous) or a table names a value the taxonomy lacks."""
    from fashionlens.search.captions import CATEGORY_NOUNS
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()
    vocab: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}

    def add(phrases: set[tuple[str, ...]], field: str, values: tuple[str, ...], known: tuple[str, ...]) -> None:
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"query vocabulary: {field} {unknown} not in the taxonomy")
        for p in phrases:
            have = vocab.get(p)
            if have is None:
                vocab[p] = (field, values)
            elif have[0] != field:
                raise ValueError(f"query vocabulary: {' '.join(p)!r} names both {have[0]} and {field}")
            else:
                vocab[p] = (field, tuple(dict.fromkeys(have[1] + values)))

    cats = tax.categories
    for c in cats:
        add(_forms(c) | _forms(c.replace("-", " ")), "categories", (c,), cats)
    for c, nouns in CATEGORY_NOUNS.items():
        for noun in nouns:
            add(_forms(noun), "categories", (c,), cats)
    for word, values in CATEGORY_SYNONYMS.items():
        add(_forms(word), "categories", values, cats)
    colours = tax.attribute("colours").values
    for c in colours:
        add({tuple(_words(c))}, "colours", (c,), colours)
        if c != "multicolour":
            add({(shade, c) for shade in SHADES}, "colours", (c,), colours)
    for word, c in COLOUR_SYNONYMS.items():
        add({tuple(_words(word))} | {(shade, *_words(word)) for shade in SHADES}, "colours", (c,), colours)
    patterns = tax.attribute("pattern").values
    for p in patterns:
        add({tuple(_words(p))}, "patterns", (p,), patterns)
    for word, p in PATTERN_SYNONYMS.items():
        add({tuple(_words(word))}, "patterns", (p,), patterns)
    materials = tax.attribute("material").values
    for m in materials:
        add({tuple(_words(m))}, "materials", (m,), materials)
    for word, m in MATERIAL_SYNONYMS.items():
        add({tuple(_words(word))}, "materials", (m,), materials)
    return vocab


@lru_cache(maxsize=1)
def _longest_phrase() -> int:
    return max(len(p) for p in vocabulary())


def _one_or_list(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


@dataclass(frozen=True)
class ParsedQuery:
    """What :func:`parse_query` understood in a text query (taxonomy ids; every field may be empty).

    ``categories``, ``patterns``, ``materials``: alternatives (a garment has one of each);
    ``colours``: all wanted, or any of them when ``any_colour`` (written with ``or``);
    ``rest``: the words that named none of these, in order; ``phrases``: ``(words, field)`` of each
    understood phrase, as found.
    """

    text: str
    categories: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    any_colour: bool = False
    patterns: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    rest: str = ""
    phrases: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing was understood (ranking is then the embedding's alone)."""
        return not (self.categories or self.colours or self.patterns or self.materials)

    def understood(self) -> dict[str, Any]:
        """The fields understood, as the search output reports them: ``{"category": "dresses",
        "colours": ["red"]}`` (one value as a string, several as a list; colours always a list;
        ``"colour_match": "any"`` when colours were joined by ``or``)."""
        out: dict[str, Any] = {}
        if self.categories:
            out["category"] = _one_or_list(self.categories)
        if self.colours:
            out["colours"] = list(self.colours)
            if self.any_colour and len(self.colours) > 1:
                out["colour_match"] = "any"
        if self.patterns:
            out["pattern"] = _one_or_list(self.patterns)
        if self.materials:
            out["material"] = _one_or_list(self.materials)
        return out

    def match(self, category: str | None, attributes: Mapping[str, Any]) -> dict[str, float]:
        """How well a garment's stored metadata agrees with each stated field, in [0, 1]: category,
        pattern, material: 1 when the garment's value is one of the query's; colours: the share of
        the query's colours the garment has (any-of: 1 when it has one). Fields the query does not
        state are left out."""
        out: dict[str, float] = {}
        if self.categories:
            out["category"] = float(category in self.categories)
        if self.colours:
            have = attributes.get("colours") or ()
            have = {have} if isinstance(have, str) else set(have)
            n = sum(c in have for c in self.colours)
            out["colours"] = float(n > 0) if self.any_colour else n / len(self.colours)
        if self.patterns:
            out["pattern"] = float(attributes.get("pattern") in self.patterns)
        if self.materials:
            out["material"] = float(attributes.get("material") in self.materials)
        return out

    def index_filters(self) -> dict[str, Any]:
        """The stated fields as :meth:`fashionlens.search.index.GarmentIndex.search` filters (any-of
        within a field). For all-of colours this is a superset; :meth:`match` decides."""
        out: dict[str, Any] = {}
        if self.categories:
            out["category"] = list(self.categories)
        if self.colours:
            out["colours"] = list(self.colours)
        if self.patterns:
            out["pattern"] = list(self.patterns)
        if self.materials:
            out["material"] = list(self.materials)
        return out


@dataclass(frozen=True)
class MatchWeights:
    """Score of a hit = cosine similarity + Σ weight × :meth:`ParsedQuery.match` of each stated field.

    The defaults were chosen on the validation split (``fashionlens evaluate search --queries --split val
    --tune``; docs/search.md): colours and pattern help; the tagger's single category and material
    labels did not add to what the text embedding already ranks by, so they weigh 0 by default (they
    still act in ``strict`` mode and are reported as understood)."""

    category: float = 0.0
    colours: float = 0.15
    pattern: float = 0.2
    material: float = 0.0

    def __post_init__(self) -> None:
        for name in ("category", "colours", "pattern", "material"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 10:
                raise ValueError(f"MatchWeights.{name}: expected a number in [0, 10]; got {value!r}")

    def bonus(self, match: Mapping[str, float]) -> float:
        return sum(getattr(self, "colours" if f == "colours" else f) * v for f, v in match.items())

    def to_dict(self) -> dict[str, float]:
        return {"category": self.category, "colours": self.colours, "pattern": self.pattern,
                "material": self.material}


#: chosen on the validation split (docs/search.md, "Text queries: what is understood")
DEFAULT_WEIGHTS = MatchWeights(category=0.0, colours=0.15, pattern=0.2, material=0.0)


def parse_query(text: str) -> ParsedQuery:
    """Category, colours, pattern and material named in ``text`` (see the module docstring)."""
    words = _words(text)
    vocab = vocabulary()
    longest = _longest_phrase()
    found: dict[str, list[str]] = {f: [] for f in _FIELD_ORDER}
    rest: list[str] = []
    phrases: list[tuple[str, str]] = []
    any_colour = False
    last_colour_end = -1  # index just after the last colour phrase
    i = 0
    while i < len(words):
        hit = None
        for n in range(min(longest, len(words) - i), 0, -1):
            hit = vocab.get(tuple(words[i:i + n]))
            if hit is not None:
                break
        if hit is None:
            # "black and white", "red or blue": a connector between two colours is part of them
            if (words[i] in _CONNECTORS and last_colour_end == i and i + 1 < len(words)
                    and _colour_at(words, i + 1, vocab, longest)):
                any_colour |= words[i] == "or"
                last_colour_end = i + 1
            else:
                rest.append(words[i])
            i += 1
            continue
        field, values = hit
        phrase = words[i:i + n]
        if i > 0 and words[i - 1] in NEGATIONS:
            rest.extend(phrase)  # "not red", "without stripes": not a constraint
        else:
            for v in values:
                if v not in found[field]:
                    found[field].append(v)
            phrases.append((" ".join(phrase), field))
            if field == "colours":
                last_colour_end = i + n
        i += n
    return ParsedQuery(text=text, categories=tuple(found["categories"]), colours=tuple(found["colours"]),
                       any_colour=any_colour and len(found["colours"]) > 1, patterns=tuple(found["patterns"]),
                       materials=tuple(found["materials"]), rest=" ".join(rest), phrases=tuple(phrases))


def _colour_at(words: list[str], i: int, vocab: Mapping[tuple[str, ...], tuple[str, tuple[str, ...]]],
               longest: int) -> bool:
    for n in range(min(longest, len(words) - i), 0, -1):
        hit = vocab.get(tuple(words[i:i + n]))
        if hit is not None:
            return hit[0] == "colours"
    return False
