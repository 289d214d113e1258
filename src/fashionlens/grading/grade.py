"""``grade``: one second-hand item (front, back, optional label photo) → one item record.

Each garment view runs the tagging pipeline (detect → crop → classify); the item's garment is the
largest confident detection of each view. Category and attributes are agreed across views (scores
summed per value), damage is looked for inside the garment's mask on every garment view, the
label photo is read as text (composition and brand, which then overrule the image's material
guess), the grading heads that have a trained model add their grades, and the sorting rules
choose a route with reasons. A view that cannot be decoded is reported in ``views[].error`` and
the item is graded from the rest; an item with no usable garment view is an error record.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.grading.item import DAMAGE_TYPES, VIEW_ROLES, empty_item
from fashionlens.imageio import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    ImageDecodeError,
    load_image,
)
from fashionlens.io.rise_release import view_role

log = logging.getLogger(__name__)

GARMENT_ROLES: tuple[str, ...] = ("front", "back")


@dataclass
class ItemInput:
    """An item to grade: its id and a photo path per role (``front``, ``back``, ``label``)."""

    item_id: str
    views: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.views) - set(VIEW_ROLES)
        if unknown:
            raise ValueError(f"item {self.item_id}: unknown view roles {sorted(unknown)}; expected {VIEW_ROLES}")
        if not any(r in self.views for r in GARMENT_ROLES):
            raise ValueError(f"item {self.item_id}: expected a front or back photo, got roles {sorted(self.views)}")


def _item_from_dir(folder: Path) -> ItemInput | None:
    views: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and (role := view_role(p)) and role not in views:
            views[role] = p
    if not any(r in views for r in GARMENT_ROLES):
        return None
    return ItemInput(folder.name, views)


def _items_from_manifest(path: Path) -> list[ItemInput]:
    """CSV or JSONL with ``item_id`` and ``front``/``back``/``label`` paths (relative to the manifest)."""
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: expected a JSON object per line ({exc.msg})") from None
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    items = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not (row.get("item_id") or row.get("id")):
            raise ValueError(f"{path}: row {n}: expected an item_id and front/back/label paths, got {row!r}")
        views = {r: (path.parent / str(row[r])) for r in VIEW_ROLES if row.get(r)}
        items.append(ItemInput(str(row.get("item_id") or row.get("id")), views))
    return items


def items_from_inputs(inputs: Sequence[str | Path]) -> list[ItemInput]:
    """Items from folders (an item folder, or a folder of item folders) and manifests (``.csv``/``.jsonl``)."""
    items: list[ItemInput] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_file() and p.suffix.lower() in (".csv", ".jsonl"):
            items += _items_from_manifest(p)
        elif p.is_dir():
            own = _item_from_dir(p)
            if own is not None:
                items.append(own)
                continue
            subs = [i for d in sorted(p.iterdir()) if d.is_dir() and (i := _item_from_dir(d)) is not None]
            if not subs:
                raise ValueError(f"{p}: expected an item folder (photos named front/back/label) or a folder of "
                                 "item folders; found neither")
            items += subs
        else:
            raise ValueError(f"{p}: expected an item folder or a manifest (.csv/.jsonl), got "
                             f"{'a missing path' if not p.exists() else 'a ' + p.suffix + ' file'}")
    seen: set[str] = set()
    for it in items:
        if it.item_id in seen:
            raise ValueError(f"item id {it.item_id!r} appears twice in the inputs")
        seen.add(it.item_id)
    return items


def _timed(func: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return func(*args), (time.perf_counter() - t0) * 1000


def _main_garment(record: dict[str, Any]) -> dict[str, Any] | None:
    garments = record.get("garments") or []
    if not garments:
        return None
    return max(garments, key=lambda g: g["bbox"][2] * g["bbox"][3] * max(g.get("score", 0.0), 1e-3))


def _garment_mask(garment: dict[str, Any] | None, image: DecodedImage) -> np.ndarray:
    from pycocotools import mask as mask_utils

    h, w = image.rgb.shape[:2]
    if garment is not None and garment.get("mask"):
        rle = garment["mask"]
        m = mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}).astype(bool)
        if m.shape != (h, w):
            import cv2

            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if m.sum() >= 0.01 * h * w:
            return m
    if garment is not None:
        s = image.scale
        x, y, bw, bh = (float(v) * s for v in garment["bbox"])
        m = np.zeros((h, w), bool)
        m[int(y):int(y + bh) + 1, int(x):int(x + bw) + 1] = True
        return m
    return np.ones((h, w), bool)


def _vote(values: list[tuple[str, float]]) -> dict[str, Any] | None:
    if not values:
        return None
    totals: dict[str, float] = defaultdict(float)
    for v, s in values:
        totals[v] += s
    best = max(totals, key=lambda k: totals[k])
    return {"id": best, "score": round(totals[best] / len(values), 4), "views": len(values)}


def fuse_views(garments: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Category, object type and attributes agreed across the views' main garments (score-weighted vote)."""
    out: dict[str, Any] = {"category": None, "object_type": None, "attributes": {}}
    if not garments:
        return out
    cats = [(g["category"]["id"], float(g["category"]["score"])) for g in garments.values() if g.get("category")]
    out["category"] = _vote(cats)
    types = [(g["object_type"], float(g.get("score", 1.0))) for g in garments.values()]
    t = _vote(types)
    out["object_type"] = t["id"] if t else None
    names = sorted({k for g in garments.values() for k in (g.get("attributes") or {})})
    for name in names:
        values = [g["attributes"][name] for g in garments.values() if name in (g.get("attributes") or {})]
        if all(isinstance(v, dict) for v in values):
            out["attributes"][name] = _vote([(v["id"], float(v.get("score", 0.0))) for v in values])
        else:  # multi-valued (colours): the view that is most sure of its first value
            out["attributes"][name] = max(values, key=lambda v: (v[0].get("score", 0.0) if v else 0.0))
    if "material" in out["attributes"] and out["attributes"]["material"]:
        out["attributes"]["material"]["source"] = "image"
    return out


class ItemGrader:
    """Grade items with models loaded once. Any part can be switched off (None).

    * ``tagger``: a :class:`fashionlens.pipeline.Tagger` with a detector (category, attributes, mask);
    * ``damage``: a :class:`fashionlens.grading.damage.DamageFinder`;
    * ``labels``: a :class:`fashionlens.grading.care_label.LabelReader`;
    * ``grader``: a :class:`fashionlens.grading.grader.Grader` (trained grading heads);
    * ``rules``: :class:`fashionlens.grading.routing.Rules`.
    """

    def __init__(self, *, tagger: Any | None, damage: Any | None = None, labels: Any | None = None,
                 grader: Any | None = None, rules: Any | None = None, decode_side: int = 800,
                 parallel_label: bool = True) -> None:
        self.tagger, self.damage, self.labels, self.grader, self.rules = tagger, damage, labels, grader, rules
        self.decode_side = decode_side  # JPEGs are decoded at a reduced scale down to about this shorter side
        self.parallel_label = parallel_label  # read the label photo in a thread while the garment views run

    @classmethod
    def default(cls, *, rules: str | Path | None = None, ocr: bool = True, damage: bool = True,
                grades: bool = True, threads: int | None = None, backend: str = "auto") -> ItemGrader:
        """The shipped models: detector + classifier, damage head, OCR, grading heads, default rules.

        ``backend``: ``auto`` (ONNX Runtime where an export sits next to the weights), ``onnx`` or
        ``torch`` for the classifier, the detector, the damage head and the grading heads' embeddings.
        """
        from fashionlens.detect import GarmentDetector
        from fashionlens.grading.routing import load_rules
        from fashionlens.pipeline import Tagger

        tagger = Tagger(threads=threads, backend=backend,  # type: ignore[arg-type]
                        detector=GarmentDetector(threads=threads, backend=backend))
        finder = labels = grader = None
        if damage:
            from fashionlens.grading.damage import DamageFinder

            finder = DamageFinder(threads=threads, backend=backend)
        if ocr:
            from fashionlens.grading.care_label import LabelReader

            labels = LabelReader(num_threads=threads or 1)
        if grades:
            from fashionlens.grading.grader import Grader

            grader = Grader(threads=threads, backend=backend)
        return cls(tagger=tagger, damage=finder, labels=labels, grader=grader, rules=load_rules(rules))

    @property
    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.tagger is not None:
            info.update(self.tagger.model_info)
        if self.damage is not None:
            info.update(self.damage.info)
        if self.grader is not None:
            info["grader"] = self.grader.weights.name
        return info

    def grade(self, item: ItemInput) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(item record, per-view details for rendering: role → {"image", "record", "garment_mask"})``."""
        t_start = time.perf_counter()
        views = [{"role": r, "path": str(item.views[r]), "error": None} for r in VIEW_ROLES if r in item.views]
        rec = empty_item(item.item_id, views)
        rec["model"] = self.model_info
        timing: dict[str, float] = defaultdict(float)
        decoded: dict[str, DecodedImage] = {}
        for v in views:
            t0 = time.perf_counter()
            try:
                decoded[v["role"]] = load_image(v["path"], min_side=self.decode_side)
            except (ImageDecodeError, OSError) as exc:
                v["error"] = f"{getattr(exc, 'code', 'unreadable')}: {exc}"
            timing["decode"] += (time.perf_counter() - t0) * 1000
        garment_views = [r for r in GARMENT_ROLES if r in decoded]
        if not garment_views:
            rec["error"] = "no readable front or back photo"
            rec["timing_ms"] = {k: round(v, 1) for k, v in timing.items()}
            return rec, {}
        details: dict[str, Any] = {}
        main: dict[str, dict[str, Any]] = {}
        label_job = None
        if "label" in decoded and self.labels is not None:
            details["label"] = {"image": decoded["label"]}
            if self.parallel_label:
                pool = ThreadPoolExecutor(max_workers=1)
                label_job = pool.submit(_timed, self.labels.read, decoded["label"].rgb)
                pool.shutdown(wait=False)
        for role in garment_views:
            im = decoded[role]
            t0 = time.perf_counter()
            record = self.tagger.tag_batch([im], [str(item.views[role])])[0] if self.tagger is not None else None
            timing["tag"] += (time.perf_counter() - t0) * 1000
            g = _main_garment(record) if record is not None else None
            if g is not None:
                main[role] = g
            mask = _garment_mask(g, im)
            details[role] = {"image": im, "record": record, "garment_mask": mask}
            if self.damage is not None:
                t0 = time.perf_counter()
                for d in self.damage.find(im.rgb, mask):
                    region = d.to_dict(role)
                    if im.scale != 1.0:
                        region["bbox"] = [round(v / im.scale, 1) for v in region["bbox"]]
                    rec["damage"]["regions"].append(region)
                timing["damage"] += (time.perf_counter() - t0) * 1000
        rec.update(fuse_views(main))
        for t in DAMAGE_TYPES:
            per_view = [sum(r["area_share"] for r in rec["damage"]["regions"] if r["type"] == t and r["view"] == v)
                        for v in garment_views]
            rec["damage"]["area_share"][t] = round(max(per_view), 5) if per_view else 0.0
        rec["damage"]["any"] = bool(rec["damage"]["regions"])
        reading = None
        if "label" in decoded and self.labels is not None:
            try:
                reading, ms = label_job.result() if label_job is not None else _timed(self.labels.read,
                                                                                       decoded["label"].rgb)
                timing["label"] += ms
            except Exception as exc:  # noqa: BLE001 - a label that cannot be read must not lose the item
                log.warning("item %s: label photo not read: %s", item.item_id, exc)
                next(v for v in views if v["role"] == "label")["error"] = f"label_unreadable: {exc}"
        if reading is not None:
            rec["label_text"] = [line.text for line in reading.lines]
            rec["brand"] = reading.brand
            if reading.composition is not None and reading.composition.fibres:
                comp = reading.composition
                rec["composition"] = {"text": comp.text, "main_fibre": comp.main_fibre,
                                      "fibres": [{"fibre": f, "percent": p} for f, p in comp.fibres]}
                rec["attributes"]["material"] = {"id": comp.main_fibre, "score": None, "source": "label"}
        if self.grader is not None:
            t0 = time.perf_counter()
            rec["grades"] = self.grader.grade_views({r: decoded[r].rgb for r in garment_views})
            timing["grades"] += (time.perf_counter() - t0) * 1000
        if self.rules is not None:
            rec["route"] = self.rules.route(rec)
        timing["total"] = (time.perf_counter() - t_start) * 1000
        rec["timing_ms"] = {k: round(v, 1) for k, v in timing.items()}
        return rec, details
