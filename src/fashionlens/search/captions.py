"""Captions from labels: the text side of the text–image alignment.

A garment's labels (taxonomy category, pattern, colours, material, sleeve, neckline, fit) and what
its data set adds (the source label such as ``Longsleeve`` or ``Winter Jacket``; RISE gender and
season; clothing ``kids``) become :class:`GarmentFacts`; :func:`caption` writes the canonical
sentence used for evaluation queries, :func:`random_caption` the varied sentences used in
training (each fact kept with some probability, synonyms, word order and templates varied).
:func:`matches` says whether a garment satisfies every fact that a query mentions — the
relevance rule of the text-to-image evaluation.

:func:`describe` is the other direction's sibling: the caption a *person* reads under a search result
(``green long-sleeved polyester dress with a collar, geometric print``), written from the taxonomy
fields stored in the index; :func:`describe_garments` lists a query photo's garments with it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CATEGORY_NOUNS", "GarmentFacts", "caption", "category_prompts", "describe", "describe_garments", "matches",
           "mentioned", "random_caption", "subset"]

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


# ------------------------------------------------------------------------------------ readable captions

#: pattern id → how a caption says it, after the noun (``plain`` goes before it)
_PATTERN_TAILS = {"ethnic": "ethnic print", "graphic": "graphic print", "floral": "floral print",
                  "tropical": "tropical print", "striped": "striped", "checked": "checked",
                  "animal-print": "animal print", "polka-dots": "polka dots", "paisley": "paisley print",
                  "spots": "spotted", "tartan": "tartan", "geometric": "geometric print",
                  "colourblock": "colour-block", "fair-isle": "Fair Isle knit", "camouflage": "camouflage print",
                  "grid-print": "grid print", "dip-dyed": "dip-dyed", "tie-dyed": "tie-dyed", "zigzag": "zigzag print",
                  "washed": "washed look"}
_NECKLINE_TAILS = {"crew-neck": "with a crew neck", "v-neck": "with a V-neck", "turtle-neck": "with a turtle neck",
                   "collared": "with a collar"}
_FIT_WORDS = {"loose": "loose", "oversize": "oversized", "tight": "tight", "cropped": "cropped", "long": "long"}
_COLOUR_WORDS = {"multicolour": "multicoloured"}
_FILLER = frozenset({"a", "an", "and", "with", "of"})


def _field(meta: Any, name: str) -> Any:
    return meta.get(name) if isinstance(meta, Mapping) else getattr(meta, name, None)


def _ids(value: Any) -> list[str]:
    """Attribute value(s) as ids: a string, a label object (``.id``) or a list of either; numbers dropped."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        v = getattr(v, "id", v)
        if isinstance(v, str) and v.strip():
            out.append(v.strip())
    return out


def _words(phrase: str) -> set[str]:
    return {w for w in phrase.lower().replace("-", " ").replace(",", " ").split() if w not in _FILLER}


def describe(meta: Any, *, short: bool = False) -> str:
    """A caption people read for one stored garment, e.g. ``green long-sleeved polyester dress with a
    collar, geometric print`` — built from the taxonomy fields of ``meta`` (a search hit as
    ``SearchHit.to_dict()`` writes it, a :class:`~fashionlens.search.index.SearchHit`, a
    :class:`~fashionlens.search._store.GarmentMeta`, or any mapping/object with ``category``,
    ``object_type`` and ``attributes``).

    Reading order: fit (``regular`` is not worth saying), ``plain``, colours (``red and white``),
    sleeve, material, the noun (the category's, else the object type's, else ``garment``), the
    neckline (``with a collar``) and, after a comma, any other pattern (``geometric print``). No word
    appears twice (a ``long`` fit beside ``long-sleeved`` becomes ``full-length``; any other clash
    drops the later, less telling fact), and no score or garment number is ever written.
    ``short=True`` keeps colours and the noun only (``green dress``): a name for a chip or a tile.
    """
    category = _field(meta, "category")
    category = getattr(category, "id", category)
    object_type = _field(meta, "object_type")
    attrs = _field(meta, "attributes") or {}

    def one(name: str) -> str | None:
        values = _ids(attrs.get(name)) if isinstance(attrs, Mapping) else []
        return values[0] if values else None

    if isinstance(category, str) and category:
        noun = CATEGORY_NOUNS.get(category, (category.replace("-", " "),))[0]
    else:
        noun = _OBJECT_TYPE_NOUNS.get(object_type or "", "garment")
    colours = [_COLOUR_WORDS.get(c, c.replace("-", " ")) for c in
               (_ids(attrs.get("colours")) if isinstance(attrs, Mapping) else [])]
    colours = list(dict.fromkeys(colours))
    pattern, material, sleeve = one("pattern"), one("material"), one("sleeve")
    neckline, fit = one("neckline"), one("fit")
    if short:
        pattern = material = sleeve = neckline = fit = None
    sleeve_phrase = _SLEEVE_PHRASES.get(sleeve, f"{sleeve}-sleeved") if sleeve else None
    fit_phrase = _FIT_WORDS.get(fit, fit.replace("-", " ")) if fit and fit != "regular" else None
    if fit_phrase == "long" and sleeve_phrase and "long" in _words(sleeve_phrase):
        fit_phrase = "full-length"
    # (slot in reading order, phrase), most telling first: a phrase repeating a kept word is dropped
    candidates = [
        (5, noun),
        (2, _colour_phrase(colours) if colours else None),
        (1, "plain" if pattern == "plain" else None),
        (8, _PATTERN_TAILS.get(pattern, pattern.replace("-", " ")) if pattern and pattern != "plain" else None),
        (4, material),
        (3, sleeve_phrase),
        (6, _NECKLINE_TAILS.get(neckline, f"with a {neckline.replace('-', ' ')}") if neckline else None),
        (0, fit_phrase),
    ]
    kept: list[tuple[int, str]] = []
    seen: set[str] = set()
    for slot, phrase in candidates:
        if not phrase:
            continue
        words = _words(phrase)
        if words & seen:
            continue
        seen |= words
        kept.append((slot, phrase))
    kept.sort()
    head = " ".join(p for s, p in kept if s < 8)
    tail = [p for s, p in kept if s >= 8]
    return ", ".join([head, *tail])


def describe_garments(result: Any) -> list[dict[str, Any]]:
    """Every garment of a tag result (:class:`~fashionlens.result.TagResult`) for a person choosing
    one: ``index``, ``object_type``, ``category``, ``bbox`` (``[x, y, w, h]`` in photo pixels),
    ``score``, ``name`` (:func:`describe` ``short``) and ``caption`` (:func:`describe`)."""
    g = result.garments
    out = []
    for j in range(len(g)):
        meta = {"category": None if g.category is None else g.category[j].id, "object_type": g.object_type[j],
                "attributes": {} if g.attributes is None else dict(g.attributes[j])}
        out.append({"index": j, "object_type": g.object_type[j], "category": meta["category"],
                    "bbox": g.bbox_json(j), "score": round(float(g.confidence[j]), 4),
                    "name": describe(meta, short=True), "caption": describe(meta)})
    return out
