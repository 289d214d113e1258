"""Parse fibre-composition text from care labels into taxonomy materials.

Handles the messy forms seen on second-hand labels: ``100%cotton``, ``80% wool, 20% polyamide``,
abbreviations (``poly``, ``acry``, ``visc``, ``nylo``, ``cott``), Swedish/German/French/… fibre
names (``bomull``, ``ull``, ``Wolle``, ``laine``, ``viskos`` …), ``Wolle 80%`` order, typing and OCR
slips (``45%%``, ``63& acrylic``, ``45Acryl``, ``1oo%``, ``UII`` for ``Ull``, full-width ``％``),
section headers (``Shell: … Lining: …``, ``Yttertyg``/``Foder``, ``Obermaterial``/``Futter``,
``Exterior``/``Interior``: the shell — the outer fabric — is what counts) and unlabelled second
lists (``100% wool. 57% cotton, 43% acrylic``; one list per language): percentages are split
into runs that add up to 100 and the first run is the composition.

Public API: :func:`parse_composition`, :func:`main_fibre`, :func:`fibre_of`, :class:`Composition`,
:func:`composition_candidates` (every section and run, for OCR text) and
:func:`composition_coverage` (parse statistics of a list of strings).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# prefix (lower-case, accents kept) -> taxonomy material; the longest matching prefix wins.
_FIBRE_PREFIXES: dict[str, str | None] = {
    "cotton": "cotton", "cott": "cotton", "cot": "cotton", "coton": "cotton", "bomull": "cotton",
    "baumwolle": "cotton", "algodon": "cotton", "algodón": "cotton", "cotone": "cotton", "katoen": "cotton",
    "polyester": "polyester", "poly": "polyester", "pes": "polyester", "polyes": "polyester",
    "polyamid": "polyamide", "polyamide": "polyamide", "nylon": "polyamide", "nylo": "polyamide",
    "nylone": "polyamide", "pa": "polyamide", "polyamida": "polyamide", "polyammide": "polyamide",
    "polyurethane": "polyurethane", "polyurethan": "polyurethane", "pu": "polyurethane",
    "polycarbamide": None, "polam": "polyamide", "tricel": "acetate",
    "acrylic": "acrylic", "acryl": "acrylic", "acry": "acrylic", "akryl": "acrylic", "acrilico": "acrylic",
    "acrílico": "acrylic", "pc": "acrylic", "pan": "acrylic",
    "wool": "wool", "ull": "wool", "wolle": "wool", "laine": "wool", "lana": "wool", "wol": "wool",
    "merino": "wool", "lambswool": "wool", "lammull": "wool", "schurwolle": "wool",
    "viscose": "viscose", "visc": "viscose", "viskos": "viscose", "viskose": "viscose", "rayon": "viscose",
    "viscosa": "viscose", "vi": "viscose", "cv": "viscose",
    "silk": "silk", "siden": "silk", "seide": "silk", "soie": "silk", "seta": "silk", "seda": "silk",
    "linen": "linen", "lin": "linen", "leinen": "linen", "lino": "linen", "flax": "linen",
    "elastane": "elastane", "elastan": "elastane", "elasthan": "elastane", "elasthanne": "elastane",
    "élasthanne": "elastane", "elestane": "elastane", "elast": "elastane", "spandex": "elastane",
    "lycra": "elastane", "ea": "elastane",
    "cashmere": "cashmere", "kashmir": "cashmere", "kaschmir": "cashmere", "cachemire": "cashmere",
    "mohair": "mohair",
    "alpaca": "alpaca", "alpacka": "alpaca", "alpaka": "alpaca", "lama": "alpaca", "llama": "alpaca",
    "angora": "angora",
    "modal": "modal",
    "lyocell": "lyocell", "tencel": "lyocell",
    "acetate": "acetate", "acetat": "acetate", "acétate": "acetate", "triacetate": "acetate",
    "leather": "leather", "läder": "leather", "leder": "leather", "cuir": "leather", "skinn": "leather",
    "down": "down", "dun": "down", "daunen": "down", "duvet": "down",
    # standard fibre codes (EU 1007/2011, ISO 2076) as printed on care labels
    "co": "cotton", "wo": "wool", "wv": "wool", "pl": "polyester", "el": "elastane", "li": "linen",
    "se": "silk", "ac": "acrylic", "modacrylic": "acrylic", "modacryl": "acrylic", "royon": "viscose",
    "rabbit": "angora",
    # recognised but not taxonomy materials
    "fur": None, "feather": None, "skin": None, "lurex": None, "metallic": None, "other": None, "unknown": None, "cont": None, "övrigt": None,
    "andere": None, "autres": None, "knitted": None,
    # more languages (Danish/Norwegian, Finnish, Polish, Hungarian, Spanish/Italian/Portuguese spellings)
    "linne": "linen", "linnen": "linen", "linho": "linen", "bomuld": "cotton", "puuvilla": "cotton", "bawełna": "cotton", "bawelna": "cotton", "pamut": "cotton",
    "algodão": "cotton", "algodao": "cotton", "uld": "wool", "villa": "wool", "wełna": "wool", "welna": "wool",
    "gyapjú": "wool", "lã": "wool", "poliamid": "polyamide", "poliamide": "polyamide", "poliammide": "polyamide",
    "poliéster": "polyester", "poliester": "polyester", "poliestere": "polyester", "polyesteri": "polyester",
    "acril": "acrylic", "akryyli": "acrylic", "viskoosi": "viscose", "wiskoza": "viscose", "elastaan": "elastane",
    "elastano": "elastane", "elastam": "elastane", "alpakka": "alpaca", "kasjmier": "cashmere",
    "cachemira": "cashmere", "silke": "silk", "lenzing": "lyocell", "ecovero": "viscose",
    "polyacryl": "acrylic", "polyacrylic": "acrylic",
    # fibres the label names that are no taxonomy material, and words for "other"/"unknown"
    "okänt": None, "okant": None, "annat": None, "andra": None, "sonstige": None, "otros": None, "altre": None,
    "antistatic": None, "metal": None, "metallised": None, "metallized": None, "hemp": None, "jute": None,
    "mixed": None, "rest": None,
}
# words that are no fibre although a fibre name starts with them ("side" ⊂ "siden"): never guessed as abbreviations
_NOT_FIBRE = {"side", "front", "back", "made", "size", "sizes", "main", "pure", "real", "new", "only", "wash", "dry",
              "iron", "hand", "fabric", "material", "self", "body", "shell", "outer", "lining", "pocket", "pockets"}
_MAX_PREFIX = max(len(k) for k in _FIBRE_PREFIXES)

_WORD = r"[^\W\d_]+"
_NUM = r"(\d+(?:[.,]\d+)?)"
_PCT_THEN_FIBRE = re.compile(rf"{_NUM}\s*%\s*((?:{_WORD}\s*){{1,2}})", re.UNICODE)
_FIBRE_THEN_PCT = re.compile(rf"({_WORD})\s*{_NUM}\s*%", re.UNICODE)
_PCT = re.compile(rf"{_NUM}\s*%")
# section headers, longest first; the header word may be followed by ":", "/" or ","
_SHELL = {"shell", "outer", "outer fabric", "outer shell", "exterior", "extérieur", "upper body", "body", "front",
          "front side", "main fabric", "main material", "self", "yttertyg", "ytterstoff", "obermaterial", "oberstoff",
          "außenmaterial", "aussenmaterial", "tissu principal", "dessus"}
_NOT_SHELL = {"lining", "foder", "futter", "innenfutter", "doublure", "forro", "fodera", "fodring", "padding", "filling",
              "fyllning", "füllung", "fullung", "wattierung", "rembourrage", "vaddering", "trim", "trimming", "garniture",
              "inner", "interior", "intérieur", "lower body", "back", "back side", "sleeves", "sleeve", "hood", "collar",
              "rib", "ribbing", "mudd", "pocketing", "insert", "contrast"}
_SECTION_WORDS = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_SHELL | _NOT_SHELL, key=len, reverse=True)) + r")\b\s*[:/,]?",
    re.IGNORECASE,
)
# OCR confusions inside a percentage: "1oo%" → "100%", "2O %" → "20 %", "l5%" → "15%"
_OCR_PCT = re.compile(r"(?<![^\W\d_])([0-9OoIl]{1,3})(?=\s*%)")
_OCR_DIGITS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1"})
_LETTER = re.compile(r"[^\W\d_]")


def _sections(text: str) -> list[tuple[str, str]]:
    """``(header, body)`` pairs in order; the header is ``""`` before the first header word."""
    sections: list[tuple[str, str]] = []
    last_key, last_end = "", 0
    for m in _SECTION_WORDS.finditer(text):
        sections.append((last_key, text[last_end:m.start()]))
        last_key, last_end = m.group(1).lower(), m.end()
    sections.append((last_key, text[last_end:]))
    # "Shell/Lining: 100% nylon": a header with nothing of its own shares the next section
    merged: list[tuple[str, str]] = []
    pending: str | None = None
    for key, body in sections:
        if pending is not None and pending in _SHELL:
            key = pending
        pending = None
        if key and not _LETTER.search(body) and not re.search(r"\d", body):
            pending = key
            continue
        merged.append((key, body))
    return [(k, b) for k, b in merged if _LETTER.search(b)]


def _shell_text(text: str) -> str:
    """The part of a label that describes the outer fabric."""
    sections = _sections(text)
    for k, t in sections:
        if k in _SHELL:
            return t
    for k, t in sections:
        if k == "" and re.search(r"\d", t):
            return t
    for k, t in sections:
        if k not in _NOT_SHELL:
            return t
    return ""


def fibre_of(word: str) -> str | None:
    """The taxonomy material a fibre word names (``"Bomull"`` → ``"cotton"``), or None."""
    w = word.strip().lower()
    if not w:
        return None
    if w in _FIBRE_PREFIXES:
        return _FIBRE_PREFIXES[w]
    if w in _NOT_FIBRE:
        return None
    # longest known name that the word starts with, at least 3 letters ("acry" ⊂ "acrylic" etc.);
    # a 3-letter name only starts words of up to 5 letters ("linne" is linen, "Lindex" is a brand)
    for n in range(min(len(w), _MAX_PREFIX), 2, -1):
        if w[:n] in _FIBRE_PREFIXES and (n > 3 or len(w) <= 5):
            return _FIBRE_PREFIXES[w[:n]]
    # abbreviations written shorter than our key ("acr", "vis")
    for key, value in _FIBRE_PREFIXES.items():
        if len(w) >= 3 and key.startswith(w) and value is not None:
            return value
    # OCR reads "l" as "I" or "1" in sans-serif capitals: "UII" is "Ull"
    if any(c in word for c in "I1|"):
        return fibre_of(re.sub(r"[I1|]", "l", word.strip()))
    return None


@dataclass(frozen=True)
class Composition:
    """A parsed fibre composition: ``fibres`` as ``(material, percent)`` sorted by share.

    ``unnamed_percent`` is the share the label gives to fibres that are no taxonomy material or
    that we cannot read (``fur``, ``lurex``, ``other``, ``Cont?``); ``section`` is the header that
    introduced the text (``"shell"``, ``"lining"`` …, lower-case) or ``""`` when there was none.
    """

    text: str
    fibres: tuple[tuple[str, float], ...]
    unnamed_percent: float = 0.0
    section: str = ""

    @property
    def main_fibre(self) -> str | None:
        return self.fibres[0][0] if self.fibres else None

    @property
    def total_percent(self) -> float:
        """Named plus unnamed percentages: 100 on a complete label."""
        return sum(p for _, p in self.fibres) + self.unnamed_percent

    @property
    def is_shell(self) -> bool:
        """True when the section is the outer fabric or not labelled at all."""
        return self.section == "" or self.section in _SHELL


def _normalise(body: str) -> str:
    body = unicodedata.normalize("NFKC", body)  # full-width "％", "：" from OCR
    body = re.sub(r"%\s*%", "%", body)  # "45%% cotton"
    body = _OCR_PCT.sub(lambda m: m.group(1).translate(_OCR_DIGITS) if re.search(r"\d", m.group(1)) else m.group(1),
                        body)
    body = re.sub(r"(\d)\s*&", r"\1%", body)  # "63& acrylic": & typed for %
    if "%" in body:
        # "75 viscose, 22% polyester" / "45Acryl": a bare number before a fibre name is a percentage
        body = re.sub(r"\b(\d{1,3})(?![\d.,%])\s*(?=([^\W\d_]+))",
                      lambda m: m.group(1) + "% " if fibre_of(m.group(2)) else m.group(0), body)
    return body


_Item = tuple[str | None, float]


def _items(body: str) -> list[_Item]:
    """``(material or None, percent)`` in label order; a bare fibre name alone counts as 100 %."""
    items: list[_Item] = []
    first_pct = _PCT.search(body)
    fibre_first = bool(first_pct) and fibre_of((re.findall(_WORD, body[: first_pct.start()]) or [""])[-1]) is not None
    if not fibre_first:
        for m in _PCT_THEN_FIBRE.finditer(body):
            material = None
            for w in m.group(2).split():  # "100% knitted acrylic": first word that names a fibre
                material = fibre_of(w)
                if material is not None:
                    break
            items.append((material, float(m.group(1).replace(",", "."))))
    if not items:
        for m in _FIBRE_THEN_PCT.finditer(body):
            items.append((fibre_of(m.group(1)), float(m.group(2).replace(",", "."))))
    if not items and not _PCT.search(body):
        hits = {h for h in (fibre_of(w) for w in re.findall(_WORD, body)) if h is not None}
        if len(hits) == 1:
            items.append((hits.pop(), 100.0))
    return [(m, p) for m, p in items if 0 < p <= 100]


def _groups(items: list[_Item]) -> list[list[_Item]]:
    """Split items into runs that each add up to 100 (± 1): ``"100% wool. 57% cotton, 43% acrylic"``
    is a shell and an unlabelled lining, a multilingual label repeats the list per language."""
    groups: list[list[_Item]] = []
    current: list[_Item] = []
    total = 0.0
    for item in items:
        if current and total + item[1] > 101.0:  # overshoot: the run so far was incomplete
            groups.append(current)
            current, total = [], 0.0
        current.append(item)
        total += item[1]
        if total >= 99.0:
            groups.append(current)
            current, total = [], 0.0
    if current:
        groups.append(current)
    return groups


def _composition(text: str, group: list[_Item], section: str) -> Composition | None:
    shares: dict[str, float] = {}
    unknown = 0.0
    for material, pct in group:
        if material is None:
            unknown += pct
        else:
            shares[material] = shares.get(material, 0.0) + pct
    if not shares or unknown > max(shares.values()):
        return None  # the largest share is a fibre we cannot name: no main fibre rather than a wrong one
    order = list(shares)
    fibres = tuple(sorted(((k, shares[k]) for k in order), key=lambda kv: -kv[1]))
    return Composition(text=text, fibres=fibres, unnamed_percent=unknown, section=section)


def parse_composition(text: str | None) -> Composition | None:
    """Parse a care-label composition; None when no fibre can be recognised.

    Only the shell section counts (``Lining: …`` and similar are cut off; without headers the first
    section). Within it, percentages are read in order and split into runs that add up to 100: the
    first run whose largest share is a fibre we can name is the composition (a second run is an
    unlabelled lining or the same list in another language). Percentages of the same fibre are
    added; unknown fibre words go to ``unnamed_percent``. A bare fibre name without any percentage
    (``"Polyester"``) counts as 100 %.
    """
    if text is None:
        return None
    raw = str(text)
    body = _normalise(_shell_text(raw))
    for group in _groups(_items(body)):
        comp = _composition(raw, group, "")
        if comp is not None:
            return comp
    return None


def composition_candidates(text: str | None) -> list[Composition]:
    """Every composition a text holds, in order: one per section and run of percentages adding up
    to 100, each with its ``section`` header (``""`` when unlabelled). ``text`` of each is the whole input."""
    if text is None:
        return []
    raw = str(text)
    out: list[Composition] = []
    for key, body in _sections(unicodedata.normalize("NFKC", raw)):
        for group in _groups(_items(_normalise(body))):
            comp = _composition(raw, group, key)
            if comp is not None:
                out.append(comp)
    return out


def main_fibre(text: str | None) -> str | None:
    """Shortcut: the material with the largest share, or None."""
    comp = parse_composition(text)
    return comp.main_fibre if comp else None


def composition_coverage(strings: Iterable[str | None], *, tolerance: float = 1.0) -> dict[str, Any]:
    """How well :func:`parse_composition` covers a list of label strings.

    Returns ``{"strings", "non_empty", "parsed", "parse_rate", "sum_100", "sum_100_rate", "unparsed",
    "sum_not_100"}``: counts of all strings, of non-empty ones, of those that parse to at least one
    fibre and of those whose percentages (named + unnamed) add up to 100 ± ``tolerance``; the rates
    are over the non-empty strings; ``unparsed`` and ``sum_not_100`` list ``{"text", "count"}``
    (most frequent first; ``sum_not_100`` also has ``"total"``).
    """
    n = non_empty = parsed = sum_ok = 0
    unparsed: Counter[str] = Counter()
    off: Counter[str] = Counter()
    totals: dict[str, float] = {}
    for s in strings:
        n += 1
        if s is None or not str(s).strip():
            continue
        non_empty += 1
        comp = parse_composition(s)
        if comp is None:
            unparsed[str(s)] += 1
            continue
        parsed += 1
        if abs(comp.total_percent - 100.0) <= tolerance:
            sum_ok += 1
        else:
            off[str(s)] += 1
            totals[str(s)] = comp.total_percent
    return {
        "strings": n,
        "non_empty": non_empty,
        "parsed": parsed,
        "parse_rate": parsed / non_empty if non_empty else 0.0,
        "sum_100": sum_ok,
        "sum_100_rate": sum_ok / non_empty if non_empty else 0.0,
        "unparsed": [{"text": t, "count": c} for t, c in unparsed.most_common()],
        "sum_not_100": [{"text": t, "count": c, "total": totals[t]} for t, c in off.most_common()],
    }
