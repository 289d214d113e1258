"""Captions from labels: the text side of the text–image alignment.

A garment's labels (taxonomy category, pattern, colours, material, sleeve, neckline, fit) and what
its data set adds (the source label such as ``Longsleeve`` or ``Winter Jacket``; RISE gender and
season; clothing ``kids``) become :class:`GarmentFacts`; :func:`caption` writes the canonical
sentence used for evaluation queries, :func:`random_caption` the varied sentences used in
training (each fact kept with some probability, synonyms, word order and templates varied).
:func:`matches` says whether a garment satisfies every fact that a query mentions — the
relevance rule of the text-to-image evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CATEGORY_NOUNS", "GarmentFacts", "caption", "category_prompts", "matches", "mentioned", "random_caption",
           "subset"]

#: taxonomy category → nouns (the first is canonical); plural categories read as singular garments
CATEGORY_NOUNS: dict[str, tuple[str, ...]] = {
    "shirts": ("shirt", "button-up shirt"),
    "formal-jackets": ("blazer", "suit jacket"),
    "t-shirts": ("t-shirt", "tee"),
    "hoodies": ("hoodie", "hooded sweatshirt"),
    "tanks": ("tank top", "vest top"),
    "camis": ("cami top", "camisole"),
    "sweaters": ("sweater", "jumper", "knitted pullover"),
    "cardigans": ("cardigan",),
    "blouses": ("blouse",),
    "coats-jackets": ("jacket", "coat"),
    "shawls-capes-ponchos": ("poncho", "shawl", "cape"),
    "shorts": ("shorts",),
    "skirts": ("skirt",),
    "jeans": ("jeans", "denim jeans"),
    "trousers": ("trousers", "pants"),
    "dresses": ("dress",),
    "jumpsuits": ("jumpsuit",),
    "playsuits": ("playsuit",),
    "trainers": ("trainers", "sneakers"),
    "boots": ("boots",),
    "flats": ("flat shoes",),
    "sandals": ("sandals",),
    "heels": ("high heels", "heeled shoes"),
    "hats": ("hat", "cap"),
    "bags": ("bag", "handbag"),
}

#: source labels that say more than (or other than) their taxonomy category
_SOURCE_NOUNS: dict[str, tuple[str, ...]] = {
    "Longsleeve": ("long-sleeve top", "long-sleeve t-shirt"),
    "Polo": ("polo shirt",),
    "Undershirt": ("undershirt", "tank top"),
    "Pants": ("trousers", "pants"),
    "Shoes": ("shoes", "pair of shoes"),
    "Outwear": ("jacket", "coat", "outerwear"),
    "Outerwear": ("jacket", "coat", "outerwear"),
    "Winter Jacket": ("winter jacket", "padded coat"),
    "Rain Jacket": ("rain jacket", "raincoat"),
    "Vest": ("vest", "waistcoat", "gilet"),
    "Body": ("bodysuit", "body"),
    "Top": ("top",),
}

_OBJECT_TYPE_NOUNS = {"upper-body": "top", "lower-body": "bottoms", "full-body": "one-piece",
                      "footwear": "shoes", "bag": "bag", "headwear": "hat"}

_PATTERN_WORDS = {"plain": "plain", "animal-print": "animal-print", "polka-dots": "polka-dot",
                  "colourblock": "colour-block", "fair-isle": "fair-isle", "grid-print": "grid-print"}
_SLEEVE_PHRASES = {"sleeveless": "sleeveless", "short": "short-sleeved", "long": "long-sleeved"}
_NECKLINE_PHRASES = {"crew-neck": "crew-neck", "v-neck": "v-neck", "turtle-neck": "turtle-neck",
                     "collared": "collared"}
_FIT_PHRASES = {"regular": "regular-fit", "loose": "loose", "oversize": "oversized", "tight": "tight",
                "cropped": "cropped", "long": "long"}
_TEMPLATES = ("a photo of {a} {d}.", "{d}", "a photo of {a} {d}", "{a} {d}", "a second-hand {d}.",
              "{d}, product photo", "picture of {a} {d}", "{a} {d} on a plain background")


@dataclass(frozen=True)
class GarmentFacts:
    """What the labels say about one garment (every field may be empty)."""

    categories: tuple[str, ...] = ()  # allowed taxonomy categories (one = exact, several = coarse label)
    object_type: str | None = None
    source_label: str | None = None
    colours: tuple[str, ...] = ()
    pattern: str | None = None
    material: str | None = None
    sleeve: str | None = None
    neckline: str | None = None
    fit: str | None = None
    gender: str | None = None  # RISE: women / men / unisex
    kids: bool = False  # clothing: kids' garment
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_labels(cls, *, categories: Sequence[str] = (), object_type: str | None = None,
                    attributes: Mapping[str, Any] | None = None, source_label: str | None = None,
                    gender: str | None = None, kids: bool = False) -> GarmentFacts:
        """From a training sample's labels (``attributes``: taxonomy attribute → value or list)."""
        a = dict(attributes or {})
        colours = a.get("colours") or ()
        colours = (colours,) if isinstance(colours, str) else tuple(colours)
        one = {k: a.get(k) if isinstance(a.get(k), str) else None for k in ("pattern", "material", "sleeve",
                                                                             "neckline", "fit")}
        g = (gender or "").strip().lower() or None
        return cls(categories=tuple(categories), object_type=object_type, source_label=source_label or None,
                   colours=colours, gender=g if g in ("women", "men", "unisex") else None, kids=bool(kids), **one)

    def nouns(self) -> tuple[str, ...]:
        """Nouns that name the garment, most specific first."""
        if self.source_label in _SOURCE_NOUNS and (len(self.categories) != 1 or self.source_label in (
                "Longsleeve", "Polo", "Undershirt", "Winter Jacket", "Rain Jacket")):
            return _SOURCE_NOUNS[self.source_label]
        if len(self.categories) == 1 and self.categories[0] in CATEGORY_NOUNS:
            return CATEGORY_NOUNS[self.categories[0]]
        if self.source_label in _SOURCE_NOUNS:
            return _SOURCE_NOUNS[self.source_label]
        if self.object_type in _OBJECT_TYPE_NOUNS:
            return (_OBJECT_TYPE_NOUNS[self.object_type],)
        return ("garment",)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _plural(noun: str) -> bool:
    return noun.endswith(("s", "jeans", "pants", "shorts", "trousers")) and not noun.endswith(("dress",))


def _colour_phrase(colours: Sequence[str], rng: random.Random | None = None) -> str:
    cs = list(colours)
    if rng is not None:
        rng.shuffle(cs)
    if not cs:
        return ""
    return cs[0] if len(cs) == 1 else ", ".join(cs[:-1]) + " and " + cs[-1]


def mentioned(f: GarmentFacts) -> GarmentFacts:
    """``f`` as a caption states it: a ``regular`` fit is not worth saying, so it is dropped."""
    return replace(f, fit=None) if f.fit == "regular" else f


def _describe(f: GarmentFacts, noun: str, rng: random.Random | None = None) -> str:
    """Every fact of ``f`` in words around ``noun`` (``rng`` varies word order and phrasing)."""
    flip = (lambda: rng.random() < 0.5) if rng is not None else (lambda: False)
    pre: list[str] = []
    post: list[str] = []
    if f.fit and f.fit != "regular":
        pre.append(_FIT_PHRASES.get(f.fit, f.fit))
    if f.colours:
        pre.append(_colour_phrase(f.colours, rng))
    if f.pattern:
        pre.append(_PATTERN_WORDS.get(f.pattern, f.pattern))
    if f.material:
        (post.append(f"made of {f.material}") if flip() else pre.append(f.material))
    if f.sleeve and "sleeve" not in noun:  # "long-sleeve top" already says it
        if f.sleeve != "sleeveless" and flip():
            post.append(f"with {f.sleeve} sleeves")
        else:
            pre.append(_SLEEVE_PHRASES.get(f.sleeve, f.sleeve))
    if f.neckline:
        pre.append(_NECKLINE_PHRASES.get(f.neckline, f.neckline))
    if f.kids:
        post.append("for kids")
    elif f.gender in ("women", "men"):
        post.append(f"for {f.gender}")
    return " ".join([*pre, noun, *post])


def subset(f: GarmentFacts, *, colours: bool = True, pattern: bool = True, material: bool = True,
           sleeve: bool = True, neckline: bool = True, fit: bool = True, who: bool = True) -> GarmentFacts:
    """The facts of ``f`` chosen by the flags (category, object type and source label always stay)."""
    return mentioned(replace(f, colours=f.colours if colours else (), pattern=f.pattern if pattern else None,
                             material=f.material if material else None, sleeve=f.sleeve if sleeve else None,
                             neckline=f.neckline if neckline else None, fit=f.fit if fit else None,
                             gender=f.gender if who else None, kids=f.kids if who else False))


def caption(f: GarmentFacts, *, colours: bool = True, pattern: bool = True, material: bool = True,
            sleeve: bool = True, neckline: bool = True, fit: bool = True, who: bool = False) -> str:
    """The canonical caption: ``a photo of a red striped wool sweater`` (facts chosen by the flags)."""
    f = subset(f, colours=colours, pattern=pattern, material=material, sleeve=sleeve, neckline=neckline,
               fit=fit, who=who)
    noun = f.nouns()[0]
    d = _describe(f, noun)
    return f"a photo of {'' if _plural(noun) else _article(d) + ' '}{d}"


def random_caption(f: GarmentFacts, rng: random.Random, *, keep: float = 0.6) -> tuple[str, GarmentFacts]:
    """A varied training caption and the facts it states: each fact kept with probability ``keep``
    (colours with at least 0.8, who-it-is-for with ``keep / 2``), a random noun, order and template."""
    kept = subset(f, colours=rng.random() < max(keep, 0.8), pattern=rng.random() < keep,
                  material=rng.random() < keep, sleeve=rng.random() < keep, neckline=rng.random() < keep,
                  fit=rng.random() < keep, who=rng.random() < keep / 2)
    noun = rng.choice(kept.nouns())
    d = _describe(kept, noun, rng)
    template = rng.choice(_TEMPLATES)
    a = "" if _plural(noun) else _article(d)
    return " ".join(template.format(a=a, d=d).split()), kept


def category_prompts(category: str) -> list[str]:
    """Zero-shot prompts for a taxonomy category (their text embeddings are averaged)."""
    nouns = CATEGORY_NOUNS.get(category, (category.replace("-", " "),))
    out = []
    for n in nouns:
        a = "" if _plural(n) else _article(n) + " "
        out += [f"a photo of {a}{n}", f"{a}{n}".strip(), f"a photo of {a}{n}, product photo"]
    return out


def matches(query: GarmentFacts, item: GarmentFacts) -> bool:
    """Does ``item`` satisfy every fact the query states? Categories: the item's allowed set holds
    one of the query's (so a ``Pants`` photo, jeans-or-trousers, is relevant to ``jeans``); a query
    without categories needs the same source label and object type; colours:
    the item has every query colour; pattern, material, sleeve, neckline, fit, gender, kids: equal."""
    if query.categories and not set(query.categories) & set(item.categories):
        return False
    if not query.categories:  # labels without a taxonomy category (RISE "Vest", clothing "Top")
        if query.source_label and query.source_label != item.source_label:
            return False
        if query.object_type and query.object_type != item.object_type:
            return False
    if query.colours and not set(query.colours) <= set(item.colours):
        return False
    for name in ("pattern", "material", "sleeve", "neckline", "fit", "gender"):
        want = getattr(query, name)
        if want is not None and getattr(item, name) != want:
            return False
    return not (query.kids and not item.kids)
