"""What the sorting station shows for one graded item: **one value per field**, each with its source.

An item record (:mod:`fashionlens.grading.item`) holds several opinions about the same thing — the
classifier's category and the grading head's RISE type, the care label's fibre composition and the
material heads' guesses, the damage head's regions and the stains/holes/pilling heads. Shown side by
side they contradict each other. :func:`present_item` resolves them once, on the server, into
``fashionlens/station/v1``::

    {"schema": "fashionlens/station/v1", "item_id": str, "error": Error|None,
     "route":  {"decision", "source", "reasons": [str], "rules", "rules_decision", "rules_reasons"},
     "fields": [Field, ...],                          in the order the station shows them
     "vocabulary": {"category": [{"id", "name"}]}}    the category words the form's dropdown offers

    Field = {"name", "title", "value", "display", "source": "label"|"model"|"person"|None,
             "origin": str, "uncertain": bool, "score": float|None, "hint": str|None, "note": str|None,
             "candidates": [{"id", "name", "score"}], "choices": [{"id", "name"}], "correctable": bool}

Precedence, decided here once (tested in ``tests/grading/test_presentation.py``):

* a **person's** correction beats everything; the model's value, when different, becomes the hint;
* **material**: the care label's composition (its main fibre) beats the material grading head and
  the image attribute; their guess is only a ``hint`` ("the photo models guessed acrylic (97 %)").
  Without a readable composition the grading head, then the image attribute, gives the value;
* **category**: one vocabulary, the taxonomy's categories with the display names of
  :data:`CATEGORY_NAMES`. The grading head's RISE type (``grades.type``, e.g. ``Blazer``) is mapped
  into the taxonomy with the ``rise`` label mapping and, as in the corrections export
  (:func:`fashionlens.grading.corrections.model_labels`), comes first; the classifier's category is
  used when there is no head or its type has no taxonomy category. When both exist and disagree the
  field is unsure and the other one is the hint;
* **damage**: a damage region found means the ``damage`` field is filled (its type, or
  ``multiple``), and ``stains``/``holes``/``pilling`` are never ``none`` or empty while a region of
  their type is shown: without a head that grades them they are filled as unsure (stains/holes
  ``minor``, the least a found region can be; pilling without a value) for the volunteer to grade;
* **compositions** are written from the parsed fibres with their spaces (``95% cotton, 5%
  elastane``); the text as read keeps its words apart too (``100%cotton`` → ``100% cotton``);
* **route**: the decision and reasons are the sorting rules' own (``record["route"]``), never
  recomputed here; a person's route replaces the decision and its reasons say so, the rules'
  decision and reasons are kept as ``rules_decision``/``rules_reasons``.

**Unsure**: a value whose record says ``"uncertain": true`` (item schema v2, operating points), a
value without an id, two models that disagree, or — for v1 records, which carry no operating point —
a score below :data:`UNSURE_BELOW`. Unsure fields keep their best guess (when there is one) and list
their ``candidates``; the page highlights them for the volunteer to confirm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from fashionlens.taxonomy import load_mapping, load_taxonomy

STATION_SCHEMA = "fashionlens/station/v1"
Source = Literal["label", "model", "person"]
SOURCES: tuple[str, ...] = ("label", "model", "person")

#: For records without operating points (item schema v1): a model value scored below this is unsure.
UNSURE_BELOW = 0.5

#: Display names of the taxonomy's categories: the only category words the station shows (result,
#: form, dropdown and the label drawn on the photo).
CATEGORY_NAMES: dict[str, str] = {
    "shirts": "Shirts", "formal-jackets": "Blazers & formal jackets", "t-shirts": "T-shirts",
    "hoodies": "Hoodies", "tanks": "Tank tops", "camis": "Camisoles", "sweaters": "Sweaters",
    "cardigans": "Cardigans", "blouses": "Blouses", "coats-jackets": "Coats & jackets",
    "shawls-capes-ponchos": "Shawls, capes & ponchos", "shorts": "Shorts", "skirts": "Skirts",
    "jeans": "Jeans", "trousers": "Trousers", "dresses": "Dresses", "jumpsuits": "Jumpsuits",
    "playsuits": "Playsuits", "trainers": "Trainers", "boots": "Boots", "flats": "Flats",
    "sandals": "Sandals", "heels": "Heels", "hats": "Hats", "bags": "Bags",
}

#: values of the RISE ``damage`` label field (as :mod:`fashionlens.io.rise_release` normalises it)
DAMAGE_VALUES: tuple[str, ...] = ("none", "stain", "hole", "pilling", "fading", "multiple", "other")
#: grading label values (the same as ``GET /v1/taxonomy``'s ``grading_values``)
GRADING_VALUES: dict[str, tuple[Any, ...]] = {"condition": (1, 2, 3, 4, 5), "pilling": (1, 2, 3, 4, 5),
                                              "stains": ("none", "minor", "major"),
                                              "holes": ("none", "minor", "major")}
_DAMAGE_FIELD = {"stains": "stain", "holes": "hole", "pilling": "pilling"}
_PERCENT_WORD = re.compile(r"(\d)\s*[%％]\s*(?=[^\W\d_])")


@dataclass(frozen=True)
class Choice:
    """One value a field can take: its stored ``id`` and the words shown for it."""

    id: Any
    name: str
    score: float | None = None


@dataclass
class FieldView:
    """One field as the station shows it (see the module docstring for the JSON)."""

    name: str
    title: str
    value: Any = None
    display: str = "—"
    source: Source | None = None
    origin: str = ""
    uncertain: bool = False
    score: float | None = None
    hint: str | None = None
    note: str | None = None
    candidates: list[Choice] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)
    correctable: bool = False


# ----------------------------------------------------------------------------------------- words
def category_name(category: str) -> str:
    """The display name of a taxonomy category (``coats-jackets`` → ``Coats & jackets``)."""
    category = str(category)
    return CATEGORY_NAMES.get(category) or category.replace("-", " ").capitalize()


def _word(value: Any) -> str:
    return str(value).replace("-", " ")


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%" if x >= 0.095 or x == 0 else f"{x * 100:.1f}%"


def spaced_composition_text(text: str) -> str:
    """A composition as read, with a space between each percentage and its fibre
    (``100%cotton`` → ``100% cotton``; ``34%polyester 66%viscose`` → ``34% polyester 66% viscose``).
    Spaces already there are kept; runs of whitespace become one space."""
    return " ".join(_PERCENT_WORD.sub(r"\1% ", text).split())


def composition_display(composition: Mapping[str, Any]) -> str:
    """``95% cotton, 5% elastane`` from the parsed fibres (largest first); the text as read, spaced,
    when no fibre was parsed."""
    fibres = [f for f in composition.get("fibres") or [] if isinstance(f, Mapping) and f.get("fibre")]
    if fibres:
        shares = [(_percent(f.get("percent")), _word(f["fibre"])) for f in fibres]
        shares.sort(key=lambda p: -(p[0] or 0.0))
        return ", ".join(word if pct is None else f"{pct:g}% {word}" for pct, word in shares)
    return spaced_composition_text(str(composition.get("text") or ""))


def _percent(value: Any) -> float | None:
    """A fibre's percentage as a number in [0, 100]; None when missing or not one (a record is shown, never refused)."""
    try:
        pct = float(value)
    except (TypeError, ValueError):
        return None
    return pct if 0.0 <= pct <= 100.0 else None


@lru_cache(maxsize=1)
def _vocab() -> dict[str, tuple[str, ...]]:
    tax = load_taxonomy()
    return {"category": tuple(tax.categories), **{name: tuple(g.values) for name, g in tax.attributes.items()}}


@lru_cache(maxsize=64)
def rise_type_category(rise_type: str) -> str | None:
    """The one taxonomy category a RISE garment type (the ``type`` grading head's value) maps to, or None
    (unknown type, or a type such as ``Vest`` that has no taxonomy category)."""
    try:
        cats = load_mapping("rise").resolve(rise_type).categories
    except (KeyError, ValueError):
        return None
    return cats[0] if len(cats) == 1 else None


# ----------------------------------------------------------------------------------------- reading the record
def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _score(v: Any) -> float | None:
    s = v.get("score") if isinstance(v, Mapping) else None
    return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


def _is_unsure(v: Any) -> bool:
    """A model value is unsure when its record says so (``"uncertain": true``) or it has no id. Records
    without operating points (item schema v1) are marked first by :func:`_mark_legacy_unsure`."""
    return isinstance(v, Mapping) and (v.get("uncertain") is True or v.get("id") is None)


def _is_legacy(record: Mapping[str, Any]) -> bool:
    schema = record.get("schema")
    return schema is None or str(schema).endswith("/v1")


def _mark_legacy_unsure(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a v1 record (no operating points) whose model values scored below :data:`UNSURE_BELOW`
    carry ``"uncertain": true`` (and ``"_fallback": true``, so the note can say why). In v2 records a
    value without ``uncertain`` is sure: they are returned unchanged (as a shallow copy)."""
    out = dict(record)
    if not _is_legacy(record):
        return out

    def mark(v: Any) -> Any:
        if isinstance(v, Mapping) and "uncertain" not in v:
            s = _score(v)
            if s is not None and s < UNSURE_BELOW:
                return {**v, "uncertain": True, "_fallback": True}
        return v

    for key in ("category", "object_type"):
        out[key] = mark(record.get(key))
    for key in ("attributes", "grades"):
        group = record.get(key)
        if isinstance(group, Mapping):
            out[key] = {k: ([mark(c) for c in v] if isinstance(v, list) else mark(v)) for k, v in group.items()}
    return out


def _unsure_note(v: Mapping[str, Any]) -> str:
    if v.get("_fallback"):
        return f"score {_pct(_score(v) or 0.0)} is below {_pct(UNSURE_BELOW)}"
    return "no value reached this field's operating point" if v.get("id") is None else \
        "below this field's operating point"


def _candidates(v: Any, name: Any = _word) -> list[Choice]:
    out = []
    for c in (v.get("candidates") if isinstance(v, Mapping) else None) or []:
        if isinstance(c, Mapping) and c.get("id") is not None:
            out.append(Choice(c["id"], name(c["id"]), _score(c)))
    return out


def _with_score(text: str, v: Any) -> str:
    s = _score(v)
    return f"{text} ({_pct(s)})" if s is not None else text


# ----------------------------------------------------------------------------------------- fields
def _model_field(f: FieldView, v: Any, origin: str, name: Any = _word) -> FieldView:
    """Fill ``f`` from one model value ``{"id", "score", ["uncertain", "candidates"]}``."""
    f.source, f.origin, f.score = "model", origin, _score(v)
    f.uncertain = _is_unsure(v)
    f.candidates = _candidates(v, name)
    if v.get("id") is not None:
        f.value = v["id"]
        f.display = name(v["id"])
    elif f.candidates:
        f.display = "? (unsure)"
    if f.uncertain:
        f.note = _unsure_note(v)
    return f


def _category(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("type", "Category", correctable=True,
                  choices=[Choice(c, category_name(c)) for c in _vocab()["category"]])
    head = _get(record, "grades", "type")
    clf = record.get("category")
    head = head if isinstance(head, Mapping) else None
    clf = clf if isinstance(clf, Mapping) else None
    head_cat = rise_type_category(str(head["id"])) if head is not None and head.get("id") is not None else None
    clf_cat = clf.get("id") if clf is not None else None
    if head is not None and head_cat is not None:
        _model_field(f, {**head, "id": head_cat}, f"grading head 'type' ({head['id']})", category_name)
        if clf is not None and clf_cat is not None and clf_cat != head_cat:
            f.hint = f"the garment classifier says {_with_score(category_name(clf_cat), clf)}"
            if not _is_unsure(clf):  # two sure models that disagree: the volunteer decides
                f.uncertain, f.note = True, "the grading head and the garment classifier disagree"
    elif clf is not None:
        _model_field(f, clf, "garment classifier", category_name)
        if head is not None and head.get("id") is not None:
            f.hint = f"the grading head says {_with_score(str(head['id']), head)} (no taxonomy category)"
    elif head is not None:
        _model_field(f, {**head, "id": None}, "grading head 'type'", category_name)
    if f.uncertain:
        # both models' candidates in the taxonomy's words (the head's RISE types mapped), best first
        best: dict[str, float] = {}
        pairs = [(head_cat, _score(head)), (clf_cat, _score(clf))]
        pairs += [(rise_type_category(str(c["id"])), _score(c)) for c in (head or {}).get("candidates") or []
                  if isinstance(c, Mapping) and c.get("id") is not None]
        pairs += [(str(c["id"]), _score(c)) for c in (clf or {}).get("candidates") or []
                  if isinstance(c, Mapping) and c.get("id") is not None]
        for cat, score in pairs:
            if cat is not None:
                best[cat] = max(best.get(cat, 0.0), score or 0.0)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:3]
        f.candidates = [Choice(c, category_name(c), round(sc, 4)) for c, sc in ranked]
    return f


def _material(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("material", "Main material", correctable=True,
                  choices=[Choice(m, _word(m)) for m in _vocab().get("material", ())])
    comp = record.get("composition")
    head = _get(record, "grades", "material")
    attr = _get(record, "attributes", "material")
    image_attr = attr if isinstance(attr, Mapping) and attr.get("source") != "label" else None
    guesses = [(v, o) for v, o in ((head, "material head"), (image_attr, "photo material attribute"))
               if isinstance(v, Mapping) and v.get("id") is not None]
    main = comp.get("main_fibre") if isinstance(comp, Mapping) else None
    if main is None and isinstance(attr, Mapping) and attr.get("source") == "label" and attr.get("id") is not None:
        main = attr["id"]
    if main is not None:
        f.value, f.display, f.source, f.origin = main, _word(main), "label", "care label (read from the photo)"
        other = [(v, o) for v, o in guesses if v["id"] != main]
        if other:
            f.hint = "; ".join(f"the {o} guessed {_with_score(_word(v['id']), v)}" for v, o in other)
        return f
    if guesses:
        v, origin = guesses[0]
        _model_field(f, v, origin)
        if len(guesses) > 1 and guesses[1][0]["id"] != v["id"]:
            f.hint = f"the {guesses[1][1]} guessed {_with_score(_word(guesses[1][0]['id']), guesses[1][0])}"
            if not _is_unsure(guesses[1][0]):
                f.uncertain, f.note = True, "the material models disagree"
    return f


def _composition(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("composition", "Composition")
    comp = record.get("composition")
    if isinstance(comp, Mapping):
        f.value = composition_display(comp)
        f.display = f.value or "—"
        f.source, f.origin = "label", "care label (read from the photo)"
        read = spaced_composition_text(str(comp.get("text") or ""))
        if read and read.replace(",", "").split() != f.display.replace(",", "").split():
            f.hint = f"as read: {read}"
    return f


def _regions(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    regions = _get(record, "damage", "regions")
    return [r for r in regions if isinstance(r, Mapping) and r.get("type")] if isinstance(regions, list) else []


def _damage_model_ran(record: Mapping[str, Any]) -> bool:
    model = record.get("model")
    return isinstance(model, Mapping) and any(str(k).startswith("damage") for k in model)


def _found(record: Mapping[str, Any], kind: str) -> str:
    regs = [r for r in _regions(record) if r["type"] == kind]
    share = _get(record, "damage", "area_share", kind)
    where = sorted({str(r.get("view")) for r in regs if r.get("view")})
    text = f"{len(regs)} {kind} region{'s' if len(regs) != 1 else ''}"
    if isinstance(share, (int, float)):
        text += f", {_pct(float(share))} of the garment"
    return text + (f" (on the {' and '.join(where)})" if where else "")


def _damage_type(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("damage", "Damage", correctable=True, choices=[Choice(d, _word(d)) for d in DAMAGE_VALUES])
    head = _get(record, "grades", "damage")
    kinds = sorted({r["type"] for r in _regions(record)})
    if kinds:
        f.value = kinds[0] if len(kinds) == 1 else "multiple"
        f.display = ", ".join(_word(k) for k in kinds)
        f.source, f.origin = "model", "damage head (regions on the photo)"
        f.note = "; ".join(_found(record, k) for k in kinds)
        if isinstance(head, Mapping) and head.get("id") not in (None, f.value):
            f.hint = f"the damage grading head says {_with_score(_word(head['id']), head)}"
            f.uncertain = True
        return f
    if isinstance(head, Mapping):
        return _model_field(f, head, "damage grading head")
    if _damage_model_ran(record):
        f.value, f.display, f.source, f.origin = "none", "none found", "model", "damage head (regions on the photo)"
    return f


def _graded_damage(record: Mapping[str, Any], name: str, title: str) -> FieldView:
    """stains / holes / pilling: the grading head when there is one, never contradicting a region found."""
    f = FieldView(name, title, correctable=True, choices=[Choice(v, _word(v)) for v in GRADING_VALUES[name]])
    kind = _DAMAGE_FIELD[name]
    head = _get(record, "grades", name)
    found = any(r["type"] == kind for r in _regions(record))
    says_none = isinstance(head, Mapping) and head.get("id") == "none"
    if isinstance(head, Mapping) and not (found and says_none):
        _model_field(f, head, f"grading head '{name}'")
        if found:
            f.note = (f.note + "; " if f.note else "") + "found: " + _found(record, kind)
        return f
    if found:
        # a region is shown on the photo: the field must not read "none" or stay empty
        f.source, f.origin, f.uncertain = "model", "damage head (regions on the photo)", True
        f.note = "found: " + _found(record, kind) + " — confirm how bad"
        if name in ("stains", "holes"):
            f.value, f.display = "minor", "minor"  # the least a region found can be
            f.candidates = [Choice("minor", "minor"), Choice("major", "major")]
        else:
            f.display = "? (pilling found: grade it)"
            f.candidates = [Choice(g, str(g)) for g in GRADING_VALUES["pilling"]]
        if says_none:
            f.hint = f"the grading head '{name}' says {_with_score(_word(head['id']), head)}"
        return f
    if _damage_model_ran(record) and name in ("stains", "holes"):
        f.value, f.display, f.source, f.origin = "none", "none found", "model", "damage head (regions on the photo)"
    return f


def _simple(record: Mapping[str, Any], name: str, title: str, *, head: str | None = None, attr: str | None = None,
            choices: Sequence[Any] = (), correctable: bool = False) -> FieldView:
    f = FieldView(name, title, correctable=correctable, choices=[Choice(c, _word(c)) for c in choices])
    h = _get(record, "grades", head) if head else None
    a = _get(record, "attributes", attr) if attr else None
    if isinstance(h, Mapping):
        _model_field(f, h, f"grading head '{head}'")
        if isinstance(a, Mapping) and a.get("id") is not None and h.get("id") is not None and a["id"] != h["id"]:
            f.hint = f"the photo attribute says {_with_score(_word(a['id']), a)}"
            if not _is_unsure(a):
                f.uncertain, f.note = True, "the grading head and the photo attribute disagree"
    elif isinstance(a, Mapping):
        _model_field(f, a, f"{attr} attribute")
    return f


def _colours(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("colors", "Main colour", correctable=True,
                  choices=[Choice(c, _word(c)) for c in _vocab().get("colours", ())])
    colours = _get(record, "attributes", "colours")
    unsure_all = _get(record, "attributes", "colours_uncertain") is True
    listed = [c for c in colours if isinstance(c, Mapping) and c.get("id")] if isinstance(colours, list) else []
    if listed:
        first = listed[0]
        f.value, f.source, f.origin, f.score = first["id"], "model", "colour head + garment pixels", _score(first)
        parts = []
        for c in listed:
            share = c.get("share")
            # a colour without a measured share (multicolour) is named without one, never as "0%"
            parts.append(f"{_word(c['id'])} {_pct(float(share))}" if isinstance(share, (int, float)) and share > 0
                         else _word(c["id"]))
        f.display = ", ".join(parts)
        f.uncertain = _is_unsure(first)
        if f.uncertain:
            f.note = _unsure_note(first)
    elif unsure_all:
        f.source, f.origin, f.uncertain, f.display = "model", "colour head + garment pixels", True, "? (unsure)"
        f.note = "no colour reached the operating point"
    return f


def _brand(record: Mapping[str, Any]) -> FieldView:
    f = FieldView("brand", "Brand")
    if record.get("brand"):
        f.value = f.display = str(record["brand"])
        f.source, f.origin = "label", "care label (read from the photo)"
    return f


def _route(record: Mapping[str, Any]) -> tuple[dict[str, Any], FieldView]:
    from fashionlens.taxonomy import ROUTES

    route = record.get("route")
    f = FieldView("usage", "Route", correctable=True, choices=[Choice(r, r) for r in ROUTES])
    out: dict[str, Any] = {"decision": None, "source": None, "reasons": [], "rules": None,
                           "rules_decision": None, "rules_reasons": []}
    if isinstance(route, Mapping) and route.get("decision"):
        reasons = [str(r) for r in route.get("reasons") or []]
        out.update(decision=route["decision"], source="model", reasons=reasons, rules=route.get("rules"),
                   rules_decision=route["decision"], rules_reasons=reasons)
        f.value, f.display, f.source = route["decision"], str(route["decision"]), "model"
        f.origin = f"sorting rules {route.get('rules') or ''}".strip()
        usage = _get(record, "grades", "usage")
        if isinstance(usage, Mapping) and usage.get("id") not in (None, route["decision"]):
            f.hint = f"the usage grading head says {_with_score(str(usage['id']), usage)}"
    return out, f


# ----------------------------------------------------------------------------------------- the item
def _apply_person(f: FieldView, value: Any) -> None:
    """A sorter's correction: it becomes the value; the model's value, when different, the hint."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        f.value, f.display, f.source, f.uncertain, f.note = None, "— (removed)", "person", False, None
        return
    before = f.display if f.value is not None and str(f.value) != str(value) else None
    was = "care label" if f.source == "label" else "model"
    names = {str(c.id): c.name for c in f.choices}
    f.value, f.display, f.source, f.origin = value, names.get(str(value), _word(value)), "person", "the sorter"
    f.uncertain, f.note, f.candidates = False, None, []
    f.hint = f"the {was} said {before}" if before else f.hint


def present_item(record: Mapping[str, Any], corrections: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The station's view of an item record (``fashionlens/station/v1``), with a sorter's corrections
    (label field → value, as ``POST /v1/corrections`` takes them) applied as ``source: "person"``.

    Reads v1 and v2 item records defensively: a missing or malformed key is an empty field, never an error.

    Raises:
        TypeError: ``record`` is not a mapping, or ``corrections`` is given and is not one.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"expected an item record (a JSON object); got {type(record).__name__}")
    if corrections is not None and not isinstance(corrections, Mapping):
        raise TypeError(f"expected corrections as a JSON object (field → value); got {type(corrections).__name__}")
    record = _mark_legacy_unsure(record)
    route, usage = _route(record)
    fields = [
        usage,
        _category(record),
        _material(record),
        _composition(record),
        _brand(record),
        _colours(record),
        _simple(record, "pattern", "Pattern", head="pattern", attr="pattern",
                choices=_vocab().get("pattern", ()), correctable=True),
        _damage_type(record),
        _graded_damage(record, "stains", "Stains"),
        _graded_damage(record, "holes", "Holes"),
        _graded_damage(record, "pilling", "Pilling (grade 1–5)"),
        _simple(record, "condition", "Condition (grade 1–5)", head="condition",
                choices=GRADING_VALUES["condition"], correctable=True),
        _simple(record, "object_type", "Object type"),
        _simple(record, "season", "Season", head="season", attr="season"),
        _simple(record, "sleeve", "Sleeve", attr="sleeve"),
        _simple(record, "neckline", "Neckline", attr="neckline"),
        _simple(record, "fit", "Fit", attr="fit"),
    ]
    obj = record.get("object_type")
    if isinstance(obj, str):
        fields[12].value, fields[12].display, fields[12].source = obj, _word(obj), "model"
        fields[12].origin = "detector + classifier"
    elif isinstance(obj, Mapping):
        _model_field(fields[12], obj, "detector + classifier")
    by_name = {f.name: f for f in fields}
    for name, value in (corrections or {}).items():
        if name in by_name and by_name[name].correctable:
            _apply_person(by_name[name], value)
    if by_name["usage"].source == "person" and by_name["usage"].value is not None:
        route["decision"], route["source"] = by_name["usage"].value, "person"
        if by_name["usage"].value == route["rules_decision"]:
            route["reasons"] = [*route["rules_reasons"], "confirmed by the sorter"]
        else:  # the rules' reasons argue for another route: they are kept apart, as rules_reasons
            route["reasons"] = ["chosen by the sorter" + (f" (the sorting rules suggested {route['rules_decision']})"
                                                          if route["rules_decision"] else "")]
    return {
        "schema": STATION_SCHEMA,
        "item_id": record.get("item_id"),
        "error": record.get("error"),
        "route": route,
        "fields": [asdict(f) for f in fields if f.source is not None or f.correctable],
        "vocabulary": {"category": [{"id": c, "name": category_name(c)} for c in _vocab()["category"]]},
    }
