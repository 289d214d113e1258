"""``grade``: one second-hand item (front, back, optional label photo) → one item record.

Each garment view runs the tagging pipeline (detect → crop → classify); the item's garment is the
largest confident detection of each view. Category and attributes are agreed across views (scores
summed per value), damage is looked for inside the garment's mask on every garment view, the
label photo is read as text (composition and brand, which then overrule the image's material
guess), the grading heads that have a trained model add their grades, and the sorting rules
choose a route with reasons.

Every input is accounted for. A view that cannot be decoded, or whose tagging or damage search
fails, is reported in ``views[].error`` (``{"type", "message"}``) and the item is graded from the
other views; an item with no usable garment view is an error record (``error``). Item discovery
(:func:`discover_items`) turns every item folder and manifest row into an :class:`ItemInput` — one
without a front or back photo carries its ``error`` and is graded as an error record — and
reports files it does not use (no role in the name, a second photo of a role, not a photo) as the
item's ``warnings``.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.grading.item import DAMAGE_TYPES, VIEW_ROLES, empty_item, item_error
from fashionlens.imageio import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    load_image,
)
from fashionlens.io.rise_release import IMAGE_SUFFIXES, view_role
from fashionlens.models.calibration import Calibration
from fashionlens.result import ColourLabel, Garments, Label, TagError, TagResult

log = logging.getLogger(__name__)

GARMENT_ROLES: tuple[str, ...] = ("front", "back")


@dataclass
class ItemInput:
    """An item to grade: its id, a photo path per role (``front``, ``back``, ``label``), the files of
    its folder that discovery did not use (``warnings``) and, for an input that cannot be graded (no
    front or back photo), the ``error`` its record gets."""

    item_id: str
    views: dict[str, Path] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    error: dict[str, str] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.views) - set(VIEW_ROLES)
        if unknown:
            raise ValueError(f"item {self.item_id}: unknown view roles {sorted(unknown)}; expected {VIEW_ROLES}")
        if self.error is None and not any(r in self.views for r in GARMENT_ROLES):
            raise ValueError(f"item {self.item_id}: expected a front or back photo, got roles {sorted(self.views)}")


@dataclass
class ItemDiscovery:
    """The items found in the inputs, and notes on files that belong to no item (loose files in a
    folder of item folders)."""

    items: list[ItemInput]
    notes: list[str] = field(default_factory=list)


#: file suffixes taken for photos (what :func:`fashionlens.imageio.load_image` reads, plus HEIC, which
#: then fails as an unsupported format in ``views[].error`` instead of vanishing)
PHOTO_SUFFIXES: frozenset[str] = frozenset(IMAGE_EXTENSIONS | IMAGE_SUFFIXES)
#: file stems preferred when a folder holds several photos of one role (``front.jpg`` over ``Front2.jpg``)
_CANONICAL_STEMS: dict[str, frozenset[str]] = {"front": frozenset({"front"}), "back": frozenset({"back"}),
                                              "label": frozenset({"label", "brand", "care"})}
_ROLE_HINT = "'front', 'back' or 'brand'/'label'/'care' in the file name"
_MAX_LISTED = 8


def photo_role(path: Path) -> str | None:
    """``front``/``back``/``label`` of a photo file by its name (``IMG_front.JPG`` → ``front``), else None."""
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return None
    return view_role(path.with_suffix(".jpg"))


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def _warning(kind: str, path: Path, message: str) -> dict[str, str]:
    return {"type": kind, "path": str(path), "message": f"{path.name}: {message}"}


def _visible(folder: Path) -> list[Path]:
    """The folder's entries without hidden ones (``.DS_Store``, ``.thumbnails/``), sorted by name."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _unused_file_warning(path: Path) -> dict[str, str]:
    if path.is_dir():
        return _warning("subfolder", path, "a folder inside an item folder; its files are not graded "
                        "(an item folder holds the item's photos directly)")
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return _warning("no_role", path, f"the name says no role; expected {_ROLE_HINT}; not graded")
    return _warning("not_a_photo", path, f"not a photo (expected {', '.join(sorted(IMAGE_EXTENSIONS))}); ignored")


def _pick_views(candidates: dict[str, list[Path]]) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """One photo per role; every further photo of a role is a ``duplicate_role`` warning naming the one used."""
    views: dict[str, Path] = {}
    warnings: list[dict[str, str]] = []
    for role in VIEW_ROLES:
        ranked = sorted(candidates.get(role, []),
                        key=lambda p: (p.stem.lower() not in _CANONICAL_STEMS[role], p.name.lower(), p.name))
        if not ranked:
            continue
        views[role] = ranked[0]
        warnings += [_warning("duplicate_role", p, f"a second {role} photo; {ranked[0].name} was graded, "
                              "this one was not") for p in ranked[1:]]
    return views, warnings


def _no_garment_error(where: str, found: str) -> dict[str, str]:
    return {"type": "no_garment_photo",
            "message": f"{where}: expected a front or back photo (a file name containing 'front' or 'back', "
                       f"e.g. front.jpg, IMG_back.JPG); found {found}"}


def _item_from_dir(folder: Path) -> ItemInput:
    """The item of one item folder; without a front or back photo, an input that becomes an error record."""
    try:
        entries = _visible(folder)
    except OSError as exc:
        return ItemInput(folder.name, error={"type": "unreadable_folder",
                                             "message": f"{folder}: expected a readable item folder; {exc}"})
    candidates: dict[str, list[Path]] = defaultdict(list)
    unused: list[dict[str, str]] = []
    for p in entries:
        role = photo_role(p) if p.is_file() else None
        if role is None:
            unused.append(_unused_file_warning(p))
        else:
            candidates[role].append(p)
    views, duplicates = _pick_views(candidates)
    warnings = unused + duplicates
    if any(r in views for r in GARMENT_ROLES):
        return ItemInput(folder.name, views, warnings)
    found = _listing([p.name + ("/" if p.is_dir() else "") for p in entries]) if entries else "an empty folder"
    return ItemInput(folder.name, views, warnings, _no_garment_error(str(folder), found))


def _has_role_photos(folder: Path) -> bool:
    return any(p.is_file() and photo_role(p) is not None for p in _visible(folder))


def _items_from_dir(folder: Path) -> ItemDiscovery:
    """An item folder (photos directly inside, no sub-folder) or a folder of item folders (every
    visible sub-folder is an item; loose files there are noted, not graded)."""
    entries = _visible(folder)
    subs = [p for p in entries if p.is_dir()]
    if not entries:
        raise ValueError(f"{folder}: expected an item folder (photos named front/back/label) or a folder of "
                         "item folders; found an empty folder")
    own_photos = _has_role_photos(folder)
    if own_photos and any(_has_role_photos(d) for d in subs):
        raise ValueError(f"{folder}: expected an item folder (photos named front/back/label) or a folder of item "
                         f"folders; found both: role photos and item folders ({_listing([d.name for d in subs])}). "
                         "Move the loose photos into their item folder")
    if own_photos or not subs:
        return ItemDiscovery([_item_from_dir(folder)])
    notes = [f"{p}: a file directly in a folder of item folders is not graded (expected it inside an item "
             "folder)" for p in entries if not p.is_dir()]
    return ItemDiscovery([_item_from_dir(d) for d in subs], notes)


def _manifest_rows(path: Path) -> list[Any]:
    try:
        return _read_manifest(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: expected a readable UTF-8 manifest (CSV with a header, or JSONL); {exc}") from None


def _read_manifest(path: Path) -> list[Any]:
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: expected a JSON object per line ({exc.msg})") from None
        return rows
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _item_from_row(path: Path, n: int, row: Any) -> ItemInput:
    if not isinstance(row, dict):
        raise ValueError(f"{path}: row {n}: expected an item_id and front/back/label paths, got {row!r}")
    cells = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    raw_id = next((cells[k] for k in ("item_id", "id") if cells.get(k) not in (None, "")), None)
    item_id = "" if raw_id is None else str(raw_id).strip()
    if not item_id:
        raise ValueError(f"{path}: row {n}: expected an item_id and front/back/label paths, got {row!r}")
    views = {r: path.parent / str(cells[r]).strip() for r in VIEW_ROLES if cells.get(r) and str(cells[r]).strip()}
    warnings = [_warning("unused_column", Path(str(v)), f"a photo path in column {k!r}, which is not front, back "
                         "or label; not graded")
                for k, v in cells.items() if k not in (*VIEW_ROLES, "item_id", "id") and isinstance(v, str)
                and Path(v.strip()).suffix.lower() in PHOTO_SUFFIXES]
    if any(r in views for r in GARMENT_ROLES):
        return ItemInput(item_id, views, warnings)
    filled = ", ".join(k for k, v in cells.items() if v not in (None, ""))
    return ItemInput(item_id, views, warnings,
                     _no_garment_error(f"{path}: row {n}", f"no front or back path (filled columns: {filled})"))


def _items_from_manifest(path: Path) -> list[ItemInput]:
    """CSV or JSONL with ``item_id`` and ``front``/``back``/``label`` paths (relative to the manifest).

    A row without a front or back path becomes an item that is graded as an error record; a manifest
    without rows, or a row without an id, is a usage error."""
    rows = _manifest_rows(path)
    if not rows:
        raise ValueError(f"{path}: expected one row per item (columns item_id, front, back, label); found no rows")
    return [_item_from_row(path, n, row) for n, row in enumerate(rows, start=1)]


def discover_items(inputs: Sequence[str | Path]) -> ItemDiscovery:
    """Items from folders (an item folder, or a folder of item folders) and manifests (``.csv``/``.jsonl``).

    Every item folder and manifest row gives one item, usable or not (see :class:`ItemInput`).
    Raises ValueError for what cannot be an input at all (a missing path, another kind of file, an empty
    folder or manifest, a manifest row without an id, an id given twice)."""
    found = ItemDiscovery([])
    for raw in inputs:
        p = Path(raw)
        if p.is_file() and p.suffix.lower() in (".csv", ".jsonl"):
            found.items += _items_from_manifest(p)
        elif p.is_dir():
            try:
                sub = _items_from_dir(p)
            except OSError as exc:
                raise ValueError(f"{p}: expected a readable folder; {exc}") from None
            found.items += sub.items
            found.notes += sub.notes
        else:
            raise ValueError(f"{p}: expected an item folder or a manifest (.csv/.jsonl), got "
                             f"{'a missing path' if not p.exists() else 'a ' + (p.suffix or 'suffix-less') + ' file'}")
    if not found.items:
        raise ValueError(f"expected at least one item in {', '.join(map(str, inputs)) or 'the inputs'}; found none")
    seen: set[str] = set()
    for it in found.items:
        if it.item_id in seen:
            raise ValueError(f"item id {it.item_id!r} appears twice in the inputs")
        seen.add(it.item_id)
    return found


def items_from_inputs(inputs: Sequence[str | Path]) -> list[ItemInput]:
    """The items of :func:`discover_items` (its notes are logged as warnings)."""
    found = discover_items(inputs)
    for note in found.notes:
        log.warning("%s", note)
    return found.items


def failed_item(item: ItemInput, exc: BaseException) -> dict[str, Any]:
    """The error record of an item whose grading failed as a whole (``error.type`` = the exception's code
    or class name)."""
    views = [{"role": r, "path": str(p), "error": None} for r, p in item.views.items()]
    rec = empty_item(item.item_id, views, warnings=list(item.warnings))
    rec["error"] = item_error(getattr(exc, "code", None) or type(exc).__name__, str(exc))
    return rec


def _timed(func: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return func(*args), (time.perf_counter() - t0) * 1000


def _json_score(garments: Garments, i: int) -> float:
    """Garment ``i``'s detection score rounded as in its tag record (4 decimals)."""
    return round(float(garments.confidence[i]), 4)


def _main_garment(result: TagResult) -> Garments | None:
    """The view's main garment (largest confident box) as a one-garment :class:`Garments`, or None."""
    garments = result.garments
    if not len(garments):
        return None

    def weight(i: int) -> float:
        _, _, w, h = garments.bbox_json(i)
        return w * h * max(_json_score(garments, i), 1e-3)

    return garments.select([max(garments, key=weight)])


def _garment_mask(garment: Garments | None, image: DecodedImage) -> np.ndarray:
    """Where to look for damage on the decoded photo: the main garment's mask (when it covers at least
    1% of the photo), else its box, else the whole photo."""
    h, w = image.rgb.shape[:2]
    if garment is not None and garment.mask is not None:
        m = garment.mask[0]
        if m.shape != (h, w):
            import cv2

            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if m.sum() >= 0.01 * h * w:
            return m
    if garment is not None:
        s = image.scale
        x, y, bw, bh = (v * s for v in garment.bbox_json(0))
        m = np.zeros((h, w), bool)
        m[int(y):int(y + bh) + 1, int(x):int(x + bw) + 1] = True
        return m
    return np.ones((h, w), bool)


#: candidates listed with an unsure value (as in ``fashionlens/result/v2``)
UNSURE_CANDIDATES = 3


def check_precision(value: float | None) -> float | None:
    """An operating point's target precision: a number in (0, 1], or None (no abstention); else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"precision: expected a number in (0, 1] or None (off), got {value!r}")
    return float(value)


def _view_vote(label: Label) -> tuple[str | None, float, dict[str, float]]:
    """What one view says about a single-valued field: its value, that value's calibrated score, and the
    scores it knows (its candidates when it has them — an unsure value — and its value)."""
    known = {str(c.id): float(c.score) for c in label.candidates if c.id is not None}
    if label.id is not None:
        known[str(label.id)] = float(label.score)
    return (None if label.id is None else str(label.id)), float(label.score), known


def _vote(views: list[tuple[str | None, float, dict[str, float]]], threshold: float | None = None,
          keep_uncertain: bool = False) -> dict[str, Any] | None:
    """One single-valued field agreed across views (each ``(value, score, known scores)``, :func:`_view_vote`):
    the value with the largest summed score over the views that chose it wins; its score is that sum over the
    number of views (the v1 vote). It is unsure when the score is below ``threshold``; its ``candidates`` are
    the three values with the largest known scores summed over the views, over the number of views."""
    chosen = [(v, s) for v, s, _ in views if v is not None]
    if not views:
        return None
    totals: dict[str, float] = defaultdict(float)
    for v, s in chosen:
        totals[v] += s
    if not totals:  # no view chose a value (views tagged without their best guesses): unsure, no id
        best, score = None, 0.0
    else:
        best = max(totals, key=lambda k: totals[k])
        score = totals[best] / len(views)
    out: dict[str, Any] = {"id": best, "score": round(score, 4), "views": len(views)}
    if best is None or (threshold is not None and score < threshold):
        known: dict[str, float] = defaultdict(float)
        for _, _, scores in views:
            for v, s in scores.items():
                known[v] += s
        ranked = sorted(known, key=lambda k: -known[k])[:UNSURE_CANDIDATES]  # ties: first view's order
        out["id"] = best if keep_uncertain else None
        out["uncertain"] = True
        out["candidates"] = [{"id": v, "score": round(known[v] / len(views), 4)} for v in ranked]
    return out


def _fuse_colours(lists: list[list[ColourLabel]], threshold: float | None, keep_uncertain: bool
                  ) -> tuple[list[dict[str, Any]], bool]:
    """The colours of the view most sure of its first colour; with a ``threshold``, a colour below it is
    unsure: left out (``keep_uncertain``: kept, marked). Returns the list and whether no colour was sure."""
    best = max(lists, key=lambda v: (v[0].score if v else 0.0))
    if threshold is None:
        return [ColourLabel(x.id, x.share, x.score).to_json() for x in best], False
    out = []
    for x in best:
        sure = x.score >= threshold
        if sure or keep_uncertain:
            d = ColourLabel(x.id, x.share, x.score, uncertain=not sure).to_json()
            out.append(d)
    return out, not any(x.score >= threshold for x in best)


def _fuse_attribute(name: str, values: list[Label | list[Label] | list[ColourLabel]],
                    thresholds: dict[str, float] | None, keep_uncertain: bool
                    ) -> tuple[dict[str, Any] | list[dict[str, Any]] | None, bool]:
    """One attribute agreed across views: a single-label head by score-weighted vote (:func:`_vote`); a
    multi-label one (colours) is the list of the view that is most sure of its first value. Returns the value
    and, for a list, whether none of it was sure (the ``<name>_uncertain`` flag)."""
    threshold = None if thresholds is None else thresholds.get(name)
    if all(isinstance(v, Label) for v in values):
        return _vote([_view_vote(v) for v in values if isinstance(v, Label)], threshold, keep_uncertain), False
    lists = [v for v in values if isinstance(v, list)]
    return _fuse_colours(lists, threshold, keep_uncertain)  # type: ignore[arg-type]


def fuse_views(garments: dict[str, Garments], *, thresholds: dict[str, float] | None = None,
               keep_uncertain: bool = False) -> dict[str, Any]:
    """Category, object type and attributes agreed across the views' main garments (score-weighted vote).

    ``garments``: view role → that view's main garment (a one-garment :class:`Garments`). ``thresholds``:
    field → the calibrated-score threshold of the operating point (``Tagger.thresholds``); a fused value
    below it is unsure — ``{"id": null, "score", "views", "uncertain": true, "candidates": [...]}``
    (``keep_uncertain``: the best guess's id instead of null) — and a colour below it is left out, with
    ``"colours_uncertain": true`` when none is sure (``docs/grading.md``). None: every value as sure."""
    out: dict[str, Any] = {"category": None, "object_type": None, "attributes": {}}
    if not garments:
        return out
    cats = [_view_vote(g.category[0]) for g in garments.values() if g.category is not None]
    out["category"] = _vote(cats, None if thresholds is None else thresholds.get("category"), keep_uncertain)
    types = [(g.object_type[0], _json_score(g, 0), {}) for g in garments.values()]
    t = _vote(types)
    out["object_type"] = t["id"] if t else None
    attributes = [g.attributes[0] if g.attributes is not None else {} for g in garments.values()]
    for name in sorted({k for a in attributes for k in a}):
        value, none_sure = _fuse_attribute(name, [a[name] for a in attributes if name in a], thresholds,
                                           keep_uncertain)
        out["attributes"][name] = value
        if none_sure:
            out["attributes"][name + "_uncertain"] = True
    if "material" in out["attributes"] and out["attributes"]["material"]:
        out["attributes"]["material"]["source"] = "image"
    return out


class ItemGrader:
    """Grade second-hand items from their photos (front, back, care label) with models loaded once.

    :meth:`grade` turns one :class:`ItemInput` into a ``fashionlens/item/v2`` record: object type,
    category and attributes from the garment views, damage regions, composition and brand read from
    the label, grades (usage, condition, price band …) and the sorting route. :meth:`default` loads
    the shipped models; any part can be switched off (None) when building one by hand.

    >>> from pathlib import Path
    >>> from fashionlens import ItemGrader
    >>> from fashionlens.grading.grade import ItemInput
    >>> grader = ItemGrader.default(ocr=False)            # no care-label reading
    >>> item = ItemInput("item-1", {"front": Path("front.jpg"), "back": Path("back.jpg")})
    >>> record, details = grader.grade(item)
    >>> record["category"], record["grades"], record["route"]

    * ``tagger``: a :class:`fashionlens.pipeline.Tagger` with a detector (category, attributes, mask);
    * ``damage``: a :class:`fashionlens.grading.damage.DamageFinder`;
    * ``labels``: a :class:`fashionlens.grading.care_label.LabelReader`;
    * ``grader``: a :class:`fashionlens.grading.grader.Grader` (trained grading heads);
    * ``rules``: :class:`fashionlens.grading.routing.Rules`.

    ``precision``: the operating point (as ``fashionlens tag --precision``): a classifier field of the item
    (category, pattern, colours, material, …) or a grade whose calibrated score is below the threshold at
    which that field reached this precision on validation is emitted as unsure (``docs/grading.md``);
    ``None`` (the default here; ``fashionlens grade`` and the service default to 0.90): every field as sure.
    ``keep_uncertain``: unsure fields keep their best guess, still marked. :meth:`grade` may override both.
    ``damage_calibration``: maps each damage region's ``score`` to the chance that it is real damage —
    ``"default"``: the shipped damage head's sidecar (``damage-segmenter-lite0.calibration.json``) when
    ``damage`` is that head (same name and version); a
    :class:`~fashionlens.models.calibration.Calibration`; or None (the head's own score).
    """

    def __init__(self, *, tagger: Any | None, damage: Any | None = None, labels: Any | None = None,
                 grader: Any | None = None, rules: Any | None = None, decode_side: int = 800,
                 parallel_label: bool = True, precision: float | None = None, keep_uncertain: bool = False,
                 damage_calibration: Calibration | str | None = "default") -> None:
        self.tagger, self.damage, self.labels, self.grader, self.rules = tagger, damage, labels, grader, rules
        self.decode_side = decode_side  # JPEGs are decoded at a reduced scale down to about this shorter side
        self.parallel_label = parallel_label  # read the label photo in a thread while the garment views run
        self.precision = check_precision(precision)
        self.keep_uncertain = keep_uncertain
        self.damage_calibration, self.damage_calibration_source = _damage_calibration(damage, damage_calibration)

    @classmethod
    def default(cls, *, rules: str | Path | None = None, ocr: bool = True, damage: bool = True,
                grades: bool = True, threads: int | None = None, backend: str = "auto",
                precision: float | None = None, keep_uncertain: bool = False) -> ItemGrader:
        """The shipped models: detector + classifier, damage head, OCR, grading heads, default rules.

        ``backend``: ``auto`` (ONNX Runtime where an export sits next to the weights), ``onnx`` or
        ``torch`` for the classifier, the detector, the damage head and the grading heads' embeddings
        (computed by the tagger's classifier: one loaded classifier serves both). ``precision``,
        ``keep_uncertain``: the operating point (see the class).
        """
        from fashionlens.grading.routing import load_rules
        from fashionlens.pipeline import TaggerConfig

        finder = labels = grader = None
        if ocr:  # the OCR engine loads in a thread while the garment models load here
            from fashionlens.grading.care_label import LabelReader

            labels = LabelReader(num_threads=threads or 1)
            labels.preload()
        tagger = TaggerConfig(threads=threads, backend=backend, detector_backend=backend).build()  # type: ignore[arg-type]
        if damage:
            from fashionlens.grading.damage import DamageFinder

            finder = DamageFinder(threads=threads, backend=backend)
        if grades:
            from fashionlens.grading.grader import Grader

            grader = Grader(classifier_backend=tagger.backend)  # the tagger's classifier: one session, not two
        return cls(tagger=tagger, damage=finder, labels=labels, grader=grader, rules=load_rules(rules),
                   precision=precision, keep_uncertain=keep_uncertain)

    @property
    def model_info(self) -> dict[str, Any]:
        return self._model_info(self.precision, self.keep_uncertain)

    def _model_info(self, precision: float | None, keep_uncertain: bool) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.tagger is not None:
            info.update(self.tagger.model_info)
        if self.damage is not None:
            info.update(self.damage.info)
            if self.damage_calibration_source is not None:
                info["damage_calibration"] = self.damage_calibration_source
        if self.grader is not None:
            info["grader"] = self.grader.weights.name
            source = getattr(self.grader, "calibration_source", None)
            if source is not None:
                info["grader_calibration"] = source
        info.pop("operating_point", None)
        if precision is not None:
            info["operating_point"] = f"precision {precision:g}" + (", unsure values kept" if keep_uncertain else "")
        return info

    def _view_tagger(self, precision: float | None) -> tuple[Any, dict[str, float] | None]:
        """The tagger the views run with, and the classifier fields' thresholds at ``precision`` (None: no
        operating point, or a tagger without calibration). The views keep their best guesses and candidates
        (``keep_uncertain``); the item's fields are decided after the views are fused."""
        tagger = self.tagger
        if tagger is None or not hasattr(tagger, "variant"):
            return tagger, getattr(tagger, "thresholds", None) if precision is not None else None
        view = tagger.variant(precision=precision, keep_uncertain=precision is not None)
        return view, view.thresholds

    def grade(self, item: ItemInput, *, precision: float | None | bool = True,
              keep_uncertain: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(item record, per-view details for rendering: role → {"image", "result", "garment_mask"})``,
        ``result`` being the view's :class:`~fashionlens.result.TagResult` (None without a tagger).

        ``precision``/``keep_uncertain``: this item's operating point (``True``/None: the grader's own).
        A view that cannot be decoded, tagged or searched for damage gets ``views[].error`` and the
        item is graded from the other views; with no usable front or back view (or an ``item.error``
        from discovery) the record is an error record and the details are empty."""
        precision = self.precision if precision is True else check_precision(precision)  # type: ignore[arg-type]
        keep = self.keep_uncertain if keep_uncertain is None else bool(keep_uncertain)
        t_start = time.perf_counter()
        views = [{"role": r, "path": str(item.views[r]), "error": None} for r in VIEW_ROLES if r in item.views]
        rec = empty_item(item.item_id, views, warnings=list(item.warnings))
        rec["model"] = self._model_info(precision, keep)
        timing: dict[str, float] = defaultdict(float)
        if item.error is not None:
            return self._failed(rec, dict(item.error), timing), {}
        by_role = {v["role"]: v for v in views}
        decoded = self._decode(views, timing)
        label_job = self._start_label(decoded)
        details: dict[str, Any] = {}
        main: dict[str, Garments] = {}
        tagger, thresholds = self._view_tagger(precision)
        for role in (r for r in GARMENT_ROLES if r in decoded):
            try:
                detail, garment, regions = self._grade_view(tagger, role, str(item.views[role]), decoded[role],
                                                            timing)
            except _ViewFailed as exc:
                log.warning("item %s: %s view not graded: %s", item.item_id, role, exc.error["message"])
                by_role[role]["error"] = exc.error
                continue
            details[role] = detail
            rec["damage"]["regions"] += regions
            if garment is not None:
                main[role] = garment
        garment_views = [r for r in GARMENT_ROLES if r in details]
        if not garment_views:
            return self._failed(rec, _no_usable_view(views), timing), {}
        rec.update(fuse_views(main, thresholds=thresholds, keep_uncertain=keep))
        self._sum_damage(rec, garment_views)
        if "label" in decoded and self.labels is not None:
            details["label"] = {"image": decoded["label"]}
            self._read_label(rec, by_role["label"], decoded["label"], label_job, timing, item.item_id)
        if self.grader is not None:
            t0 = time.perf_counter()
            rec["grades"] = self._grades({r: decoded[r].rgb for r in garment_views}, precision, keep)
            timing["grades"] += (time.perf_counter() - t0) * 1000
        if self.rules is not None:
            rec["route"] = self.rules.route(rec)
        timing["total"] = (time.perf_counter() - t_start) * 1000
        rec["timing_ms"] = {k: round(v, 1) for k, v in timing.items()}
        return rec, details

    def _grades(self, rgb_by_role: dict[str, np.ndarray], precision: float | None, keep: bool) -> dict[str, Any]:
        """The grading heads' grades, unsure below their operating point (heads without one: as sure)."""
        import inspect

        if "precision" in inspect.signature(self.grader.grade_views).parameters:
            return self.grader.grade_views(rgb_by_role, precision=precision, keep_uncertain=keep)
        return self.grader.grade_views(rgb_by_role)  # a grader without operating points: its grades as they are

    @staticmethod
    def _failed(rec: dict[str, Any], error: dict[str, str], timing: dict[str, float]) -> dict[str, Any]:
        rec["error"] = error
        rec["timing_ms"] = {k: round(v, 1) for k, v in timing.items()}
        return rec

    def _decode(self, views: list[dict[str, Any]], timing: dict[str, float]) -> dict[str, DecodedImage]:
        """Each view's photo; one that cannot be decoded gets its ``error`` (the decoder's code)."""
        decoded: dict[str, DecodedImage] = {}
        for v in views:
            t0 = time.perf_counter()
            try:
                decoded[v["role"]] = load_image(v["path"], min_side=self.decode_side)
            except Exception as exc:  # noqa: BLE001 - any photo that cannot be read is that view's error
                v["error"] = item_error(getattr(exc, "code", None) or "decode_failed", str(exc))
            timing["decode"] += (time.perf_counter() - t0) * 1000
        return decoded

    def _start_label(self, decoded: dict[str, DecodedImage]) -> Any:
        """Read the label photo in a thread while the garment views run (None: read it later, or not at all)."""
        if "label" not in decoded or self.labels is None or not self.parallel_label:
            return None
        if not any(r in decoded for r in GARMENT_ROLES):  # an error record: the label would not be used
            return None
        pool = ThreadPoolExecutor(max_workers=1)
        job = pool.submit(_timed, self.labels.read, decoded["label"].rgb)
        pool.shutdown(wait=False)
        return job

    def _grade_view(self, tagger: Any, role: str, path: str, im: DecodedImage, timing: dict[str, float]
                    ) -> tuple[dict[str, Any], Garments | None, list[dict[str, Any]]]:
        """One garment view: tagging, its main garment and mask, damage regions. Raises :class:`_ViewFailed`."""
        t0 = time.perf_counter()
        result: TagResult | None = None
        if tagger is not None:
            try:
                [result] = tagger.tag([im], [path])
            except Exception as exc:
                raise _ViewFailed(_view_error("inference_failed", "tagging", exc)) from exc
            finally:
                timing["tag"] += (time.perf_counter() - t0) * 1000
            if result.error is not None:  # a tagger that returns an error result instead of raising
                raise _ViewFailed(_view_error("inference_failed", "tagging", result.error))
        g = _main_garment(result) if result is not None else None
        mask = _garment_mask(g, im)
        regions: list[dict[str, Any]] = []
        if self.damage is not None:
            t0 = time.perf_counter()
            try:
                for d in self.damage.find(im.rgb, mask):
                    region = d.to_dict(role)
                    if self.damage_calibration is not None:
                        raw = np.array([[d.score]], np.float64)
                        region["score"] = round(float(self.damage_calibration.heads["damage"].apply(raw)[0, 0]), 4)
                    if im.scale != 1.0:
                        region["bbox"] = [round(v / im.scale, 1) for v in region["bbox"]]
                    regions.append(region)
            except Exception as exc:
                raise _ViewFailed(_view_error("inference_failed", "damage search", exc)) from exc
            finally:
                timing["damage"] += (time.perf_counter() - t0) * 1000
        return {"image": im, "result": result, "garment_mask": mask}, g, regions

    @staticmethod
    def _sum_damage(rec: dict[str, Any], garment_views: list[str]) -> None:
        for t in DAMAGE_TYPES:
            per_view = [sum(r["area_share"] for r in rec["damage"]["regions"] if r["type"] == t and r["view"] == v)
                        for v in garment_views]
            rec["damage"]["area_share"][t] = round(max(per_view), 5) if per_view else 0.0
        rec["damage"]["any"] = bool(rec["damage"]["regions"])

    def _read_label(self, rec: dict[str, Any], view: dict[str, Any], image: DecodedImage, job: Any,
                    timing: dict[str, float], item_id: str) -> None:
        """Composition and brand from the label photo; a label that cannot be read is the label view's error."""
        try:
            reading, ms = job.result() if job is not None else _timed(self.labels.read, image.rgb)
            timing["label"] += ms
        except Exception as exc:  # noqa: BLE001 - a label that cannot be read must not lose the item
            log.warning("item %s: label photo not read: %s", item_id, exc)
            view["error"] = item_error("label_unreadable", f"{type(exc).__name__}: {exc}")
            return
        if reading is None:
            return
        rec["label_text"] = [line.text for line in reading.lines]
        rec["brand"] = reading.brand
        if reading.composition is not None and reading.composition.fibres:
            comp = reading.composition
            rec["composition"] = {"text": comp.text, "main_fibre": comp.main_fibre,
                                  "fibres": [{"fibre": f, "percent": p} for f, p in comp.fibres]}
            rec["attributes"]["material"] = {"id": comp.main_fibre, "score": None, "source": "label"}


def _damage_calibration(damage: Any, calibration: Calibration | str | None) -> tuple[Calibration | None, str | None]:
    """The calibration of the damage regions' scores and how ``model.damage_calibration`` names it (None: no
    damage head; ``none (uncalibrated)``: a head without one)."""
    if damage is None:
        return None, None
    if calibration is None:
        return None, "none (uncalibrated)"
    if isinstance(calibration, Calibration):
        loaded, source = calibration, "given"
    elif calibration == "default":
        from fashionlens.models.registry import (
            DEFAULT_DAMAGE_MODEL,
            default_weights_path,
        )

        meta = getattr(damage, "meta", None)
        path = default_weights_path(DEFAULT_DAMAGE_MODEL)
        found = Calibration.for_weights(path)
        fitted_on = (found.provenance.get("weights") or {}) if found is not None else {}
        if meta is None or found is None or (fitted_on.get("name"), str(fitted_on.get("version"))) != (
                getattr(meta, "name", None), str(getattr(meta, "version", None))):
            return None, "none (uncalibrated)"
        loaded, source = found, f"{path.stem}.calibration.json"
    else:
        raise TypeError(f"damage_calibration: expected a Calibration, 'default' or None, got {calibration!r}")
    if "damage" not in loaded.heads:
        raise ValueError(f"damage calibration ({source}): expected a head 'damage', got {sorted(loaded.heads)}")
    return loaded, source


class _ViewFailed(Exception):
    """A garment view that could not be graded; ``error`` is its ``views[].error``."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error["message"])
        self.error = error


def _view_error(kind: str, stage: str, cause: BaseException | TagError | Any) -> dict[str, str]:
    """``{"type", "message"}`` of a failed stage, from an exception or a tag result's ``error``."""
    if isinstance(cause, BaseException):
        return item_error(kind, f"{stage}: {type(cause).__name__}: {cause}"[:500])
    if isinstance(cause, TagError):
        return item_error(cause.type or kind, f"{stage}: {cause.message}"[:500])
    return item_error(kind, f"{stage}: {cause}"[:500])


def _no_usable_view(views: list[dict[str, Any]]) -> dict[str, str]:
    garment = [v for v in views if v["role"] in GARMENT_ROLES]
    why = "; ".join(f"{v['role']}: {v['error']['type']} ({v['error']['message']})" for v in garment if v["error"])
    return item_error("no_usable_view", f"expected a front or back photo that can be decoded and graded; {why}")


def run_grade_job(inputs: Sequence[str | Path], *, output: str | Path = "-", rules: str | Path | None = None,
                  ocr: bool = True, damage: bool = True, grades: bool = True, threads: int | None = 1,
                  backend: str = "auto", render_dir: str | Path | None = None, progress: bool = True,
                  on_message: Callable[[str], None] | None = None, precision: float | None = None,
                  keep_uncertain: bool = False) -> int:
    """Grade the items of ``inputs`` (item folders, folders of item folders, manifests: :func:`discover_items`)
    with the shipped models (:meth:`ItemGrader.default`) into JSON lines at ``output`` (``"-"`` = stdout);
    return 0 (every item graded) or 1 (some item is an error record).

    Every item gets a record, written as soon as it is graded: an item whose grading fails as a whole is an
    error record (:func:`failed_item`) and the others go on. ``render_dir``: also write a picture of each
    graded item there (one that cannot be drawn is a warning of its record). Discovery notes, grading heads
    without a trained model and a one-line summary (when some item failed or has warnings) go to
    ``on_message`` (the CLI prints them), else to the log. ``precision``, ``keep_uncertain``: the operating
    point (:class:`ItemGrader`; ``fashionlens grade`` passes 0.90 unless ``--precision off``).
    """
    say = on_message or log.warning
    found = discover_items(inputs)
    for note in found.notes:
        say(note)
    grader = ItemGrader.default(rules=rules, ocr=ocr, damage=damage, grades=grades, threads=threads,
                                backend=backend, precision=precision, keep_uncertain=keep_uncertain)
    if grader.grader is not None and grader.grader.untrained:
        say("grading heads without a trained model (train them with `fashionlens train grader --data PATH`): "
            + ", ".join(sorted(grader.grader.untrained)))
    out = sys.stdout if str(output) == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
    pictures = Path(render_dir) if render_dir else None
    if pictures:
        pictures.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    warned = 0
    try:
        items: Any = found.items
        if progress:  # tqdm only where a bar is shown: its import is a start-up cost
            from tqdm import tqdm

            items = tqdm(found.items, desc="grade", unit="item", file=sys.stderr)
        for item in items:
            rec = _grade_one(grader, item, pictures)
            if rec["error"] is not None:
                failed.append(item.item_id)
            warned += bool(rec["warnings"])
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    summary = _grade_summary(len(found.items), failed, warned)
    if summary:
        say(summary)
    return 1 if failed else 0


def _grade_one(grader: ItemGrader, item: ItemInput, render_dir: Path | None) -> dict[str, Any]:
    """One item's record: an error record when grading fails as a whole; a picture that cannot be
    rendered is a warning. Never raises, so one item cannot stop the others."""
    try:
        rec, details = grader.grade(item)
    except Exception as exc:  # noqa: BLE001 - one item's failure is its error record; the batch goes on
        log.error("item %s: grading failed: %s: %s", item.item_id, type(exc).__name__, exc)
        return failed_item(item, exc)
    if render_dir and details:
        try:
            _render_item_picture(rec, details, render_dir / f"{item.item_id}.png")
        except Exception as exc:  # noqa: BLE001 - the record stands without its picture
            rec["warnings"].append({"type": "render_failed", "path": str(render_dir / f"{item.item_id}.png"),
                                    "message": f"the picture was not written: {type(exc).__name__}: {exc}"})
    return rec


def _render_item_picture(rec: dict[str, Any], details: dict[str, Any], path: Path) -> None:
    from PIL import Image

    from fashionlens.grading.render_item import render_item

    Image.fromarray(np.ascontiguousarray(render_item(rec, details))).save(path)


def _grade_summary(total: int, failed: list[str], warned: int) -> str | None:
    """One line when some item failed or has warnings (records say which and why); None otherwise."""
    if not failed and not warned:
        return None
    shown = ", ".join(failed[:10]) + (", …" if len(failed) > 10 else "")
    return (f"{total - len(failed)} of {total} items graded; {len(failed)} error record(s)"
            + (f" ({shown})" if failed else "") + f"; {warned} with warnings (see each record's error and warnings)")
