"""Parse fibre-composition text from care labels into taxonomy materials.

Handles the messy forms seen on second-hand labels: ``100%cotton``, ``80% wool, 20% polyamide``,
abbreviations (``poly``, ``acry``, ``visc``, ``nylo``, ``cott``), Swedish/German/French fibre
names (``bomull``, ``ull``, ``Wolle``, ``laine``, ``viskos`` …), ``Wolle 80%`` order, and
``Shell: … Lining: …`` labels (the shell — the outer fabric — is what counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
}
_MAX_PREFIX = max(len(k) for k in _FIBRE_PREFIXES)

_WORD = r"[^\W\d_]+"
_PCT_THEN_FIBRE = re.compile(rf"(\d+(?:[.,]\d+)?)\s*%\s*((?:{_WORD}\s*){{1,2}})", re.UNICODE)
_FIBRE_THEN_PCT = re.compile(rf"({_WORD})\s*(\d+(?:[.,]\d+)?)\s*%", re.UNICODE)
_SECTION_WORDS = re.compile(
    r"\b(shell|outer|exterior|upper body|lower body|body|lining|foder|futter|doublure|fodring|padding|"
    r"filling|fyllning|vaddering|trim|inner)\b\s*[:/,]?",
    re.IGNORECASE,
)
_SHELL = {"shell", "outer", "exterior", "upper body", "body"}
_NOT_SHELL = {"lining", "foder", "futter", "doublure", "fodring", "padding", "filling", "fyllning", "vaddering", "trim",
              "inner", "lower body"}


def _shell_text(text: str) -> str:
    """The part of a label that describes the outer fabric."""
    sections: list[tuple[str, str]] = []
    last_key, last_end = "", 0
    for m in _SECTION_WORDS.finditer(text):
        sections.append((last_key, text[last_end:m.start()]))
        last_key, last_end = m.group(1).lower(), m.end()
    sections.append((last_key, text[last_end:]))
    # "Shell/Lining: 100% nylon": a shell header with nothing of its own shares the next section
    for i in range(len(sections) - 1):
        if sections[i][0] in _SHELL and not re.search(r"[^\W\d_]", sections[i][1]):
            return sections[i + 1][1]
    has_digits = [(k, t) for k, t in sections if re.search(r"[^\W\d_]", t)]
    for k, t in has_digits:
        if k in _SHELL:
            return t
    for k, t in has_digits:
        if k == "" and re.search(r"\d", t):
            return t
    for k, t in has_digits:
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
    # longest known name that the word starts with, at least 3 letters ("acry" ⊂ "acrylic" etc.)
    for n in range(min(len(w), _MAX_PREFIX), 2, -1):
        hit = _FIBRE_PREFIXES.get(w[:n])
        if w[:n] in _FIBRE_PREFIXES:
            return hit
    # abbreviations written shorter than our key ("acr", "vis")
    for key, value in _FIBRE_PREFIXES.items():
        if len(w) >= 3 and key.startswith(w) and value is not None:
            return value
    return None


@dataclass(frozen=True)
class Composition:
    """A parsed fibre composition: ``fibres`` as ``(material, percent)`` sorted by share."""

    text: str
    fibres: tuple[tuple[str, float], ...]

    @property
    def main_fibre(self) -> str | None:
        return self.fibres[0][0] if self.fibres else None


def parse_composition(text: str | None) -> Composition | None:
    """Parse a care-label composition; None when no fibre can be recognised.

    Only the first section counts (the shell; ``Lining: …`` and similar are cut off). Percentages
    of the same fibre are added; unknown fibre words are dropped. A bare fibre name without a
    percentage (``"Polyester"``) counts as 100 %.
    """
    if text is None:
        return None
    raw = str(text)
    body = _shell_text(raw)
    body = re.sub(r"(\d)\s*&", r"\1%", body)  # "63& acrylic": & typed for %
    # "75 viscose, 22% polyester": a bare number before a fibre name is a percentage
    body = re.sub(r"\b(\d{1,3})\s+(?=([^\W\d_]+))",
                  lambda m: m.group(1) + "% " if fibre_of(m.group(2)) and "%" in body else m.group(0), body)
    shares: dict[str, float] = {}
    order: list[str] = []
    unknown = 0.0

    def add(material: str | None, pct: float) -> None:
        nonlocal unknown
        if not (0 < pct <= 100):
            return
        if material is None:
            unknown += pct
            return
        if material not in shares:
            order.append(material)
            shares[material] = 0.0
        shares[material] += pct

    found = False
    first_pct = re.search(r"\d+(?:[.,]\d+)?\s*%", body)
    fibre_first = bool(first_pct) and fibre_of((re.findall(_WORD, body[: first_pct.start()]) or [""])[-1]) is not None
    for m in ([] if fibre_first else _PCT_THEN_FIBRE.finditer(body)):
        pct = float(m.group(1).replace(",", "."))
        words = m.group(2).split()
        material = None
        for w in words:  # "100% knitted acrylic": first word that names a fibre
            material = fibre_of(w)
            if material is not None:
                break
        found = True
        add(material, pct)
    if not found:
        for m in _FIBRE_THEN_PCT.finditer(body):
            found = True
            add(fibre_of(m.group(1)), float(m.group(2).replace(",", ".")))
    if not found:
        words = re.findall(_WORD, body)
        hits = [fibre_of(w) for w in words]
        hits = [h for h in hits if h is not None]
        if len(set(hits)) == 1:
            add(hits[0], 100.0)
    if not shares:
        return None
    if unknown > max(shares.values()):
        return None  # the largest share is a fibre we cannot name: no main fibre rather than a wrong one
    fibres = tuple(sorted(((k, shares[k]) for k in order), key=lambda kv: -kv[1]))
    return Composition(text=raw, fibres=fibres)


def main_fibre(text: str | None) -> str | None:
    """Shortcut: the material with the largest share, or None."""
    comp = parse_composition(text)
    return comp.main_fibre if comp else None
