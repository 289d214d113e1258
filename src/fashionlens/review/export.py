"""``review export``: the reviewed labels (tasks accepted or corrected; skipped and pending ones are left
out) as training data.

* **COCO** (``OUT/coco/annotations.json``), the reviewed garments of tag results: one image per photo (its
  path as ``file_name``), one annotation per garment with ``bbox`` [x, y, w, h], ``segmentation`` (COCO RLE,
  when the detector gave a mask), ``area``, ``category_id`` in the chosen label space (the 25 taxonomy
  categories, supercategory = object type; or the 6 object types), and ``attributes``: every field's final
  value (the reviewer's answer, else the model's sure value; ``null`` = unknown), plus ``fashionlens``
  (task id, status, source line). Garments without a value in the label space are counted, not written.
* **RISE layout** (``OUT/rise/garments.jsonl`` + ``OUT/rise/images/<id>.jpg``), the reviewed items of grade
  records, as the shared RISE subset is laid out (``id, type, pattern, cut, material, colors, season,
  gender``; ``colors`` a Python-style list string) plus the reviewed grading heads (``usage``,
  ``condition``...); :func:`fashionlens.io.rise_release.read_items` reads it back.

Both files are written atomically (a reader sees the old export or the new one).
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from fashionlens.io.atomic import atomic_write_bytes
from fashionlens.review.store import ReviewStore, Task
from fashionlens.taxonomy import load_taxonomy

__all__ = ["ExportSummary", "LabelSpace", "export_reviewed", "tasks_to_coco", "tasks_to_rise_rows"]

LabelSpace = Literal["category", "object_type"]
DONE: tuple[str, ...] = ("accepted", "corrected")
#: RISE columns, in the shared subset's order; then the grading heads a review may have answered
RISE_COLUMNS: tuple[str, ...] = ("id", "type", "pattern", "cut", "material", "colors", "season", "gender")
RISE_HEADS: tuple[str, ...] = ("usage", "condition", "price", "stains", "holes", "pilling", "damage", "trend", "brand")
_BAD_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ExportSummary:
    coco: str | None = None
    rise: str | None = None
    images: int = 0
    annotations: int = 0
    items: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"coco": self.coco, "rise": self.rise, "images": self.images, "annotations": self.annotations,
                "items": self.items, "skipped": self.skipped}


def _image_size(task: Task) -> tuple[int, int]:
    if task.width and task.height:
        return int(task.width), int(task.height)
    if task.mask is not None:
        h, w = (int(v) for v in task.mask["size"])
        return w, h
    if task.photo and Path(task.photo).is_file():
        with Image.open(task.photo) as im:
            return im.size
    raise ValueError(f"task {task.id}: expected the photo's size (in the result, the mask or the photo "
                     f"{task.photo}); none is known")


def tasks_to_coco(tasks: Sequence[Task], *, label_space: LabelSpace = "category") -> tuple[dict[str, Any], dict[str, int]]:
    """The COCO instances dict of reviewed garment tasks, and how many were left out and why."""
    from pycocotools import mask as mask_utils

    tax = load_taxonomy()
    if label_space == "category":
        names = list(tax.categories)
        categories = [{"id": i + 1, "name": n, "supercategory": tax.category_object_type[n]} for i, n in enumerate(names)]
    elif label_space == "object_type":
        names = list(tax.object_types)
        categories = [{"id": i + 1, "name": n, "supercategory": "garment"} for i, n in enumerate(names)]
    else:
        raise ValueError(f"label space: expected 'category' or 'object_type'; got {label_space!r}")
    images: dict[str, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    skipped = {"no_label": 0, "no_geometry": 0}
    for task in tasks:
        values = task.final_values()
        label = values.get(label_space) if label_space in values else (task.object_type if label_space ==
                                                                         "object_type" else None)
        if not isinstance(label, str) or label not in names:
            skipped["no_label"] += 1
            continue
        if task.bbox is None and task.mask is None:
            skipped["no_geometry"] += 1
            continue
        photo = task.photo or f"task-{task.id}"
        if photo not in images:
            w, h = _image_size(task)
            images[photo] = {"id": len(images) + 1, "file_name": photo, "width": w, "height": h}
        image = images[photo]
        ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": image["id"],
                               "category_id": names.index(label) + 1, "iscrowd": 0}
        if task.mask is not None:
            rle = dict(task.mask)
            if isinstance(rle["counts"], list):
                rle = mask_utils.frPyObjects(rle, *(int(v) for v in rle["size"]))
            counts = rle["counts"]
            rle = {"size": [int(v) for v in rle["size"]],
                   "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
            coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            ann["segmentation"] = rle
            ann["area"] = float(mask_utils.area(coded))
            box = task.bbox if task.bbox is not None else mask_utils.toBbox(coded).tolist()
        else:
            box = task.bbox
            ann["area"] = float(box[2] * box[3])
        ann["bbox"] = [float(v) for v in box]
        ann["attributes"] = values
        ann["fashionlens"] = {"task_id": task.id, "status": task.status, "source": task.source, "line": task.line,
                              "index": task.index}
        annotations.append(ann)
    coco = {"info": {"description": "fashionlens review export", "label_space": label_space},
            "images": list(images.values()), "annotations": annotations, "categories": categories}
    return coco, skipped


def _first(values: dict[str, Any], *names: str) -> Any:
    for n in names:
        v = values.get(n)
        if v is not None and v != [] and v != "":
            return v
    return None


def tasks_to_rise_rows(tasks: Sequence[Task]) -> list[tuple[dict[str, Any], Task]]:
    """One RISE row per reviewed item task (module docstring), with its task."""
    rows = []
    seen: set[str] = set()
    for task in tasks:
        values = task.final_values()
        item_id = _BAD_ID.sub("_", task.item_id or "") or f"task-{task.id}"
        if item_id in seen:
            item_id = f"{item_id}-{task.id}"
        seen.add(item_id)
        colours = _first(values, "colours", "grades.colors")
        row: dict[str, Any] = {
            "id": item_id,
            "type": _first(values, "grades.type", "category"),
            "pattern": _first(values, "grades.pattern", "pattern"),
            "cut": "[]",
            "material": _first(values, "grades.material", "material"),
            "colors": repr(list(colours)) if isinstance(colours, list) else "[]",
            "season": _first(values, "grades.season", "season") or "",
            "gender": "",
        }
        for head in RISE_HEADS:
            value = _first(values, "grades." + head)
            if value is not None:
                row[head] = value
        rows.append((row, task))
    return rows


def _write_rise(rows: Sequence[tuple[dict[str, Any], Task]], out: Path, store: ReviewStore) -> int:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for row, task in rows:
        target = images / f"{row['id']}.jpg"
        kept = store.photo(task.id) if task.photo_roles else None
        if kept is not None:  # a sorting-station correction's photo, kept in the store
            data, fmt = kept
            if fmt.upper() in ("JPEG", "MPO"):
                atomic_write_bytes(target, data)
            else:
                with Image.open(io.BytesIO(data)) as im:
                    im.convert("RGB").save(target, format="JPEG", quality=95)
        elif task.photo and Path(task.photo).is_file():
            if Path(task.photo).suffix.lower() in (".jpg", ".jpeg"):
                shutil.copyfile(task.photo, target)
            else:
                with Image.open(task.photo) as im:
                    im.convert("RGB").save(target, format="JPEG", quality=95)
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_bytes(out / "garments.jsonl", ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    return len(rows)


def export_reviewed(store: ReviewStore, out: str | Path, *, label_space: LabelSpace = "category") -> ExportSummary:
    """Write the COCO file (reviewed garments) and the RISE layout (reviewed items) under ``out``."""
    out = Path(out)
    done = list(store.tasks(statuses=DONE))
    garments = [t for t in done if t.kind == "garment"]
    items = [t for t in done if t.kind == "item"]
    summary = ExportSummary()
    if garments:
        coco, skipped = tasks_to_coco(garments, label_space=label_space)
        (out / "coco").mkdir(parents=True, exist_ok=True)
        path = out / "coco" / "annotations.json"
        atomic_write_bytes(path, json.dumps(coco, ensure_ascii=False, default=_json_default).encode("utf-8"))
        summary.coco, summary.images, summary.annotations = str(path), len(coco["images"]), len(coco["annotations"])
        summary.skipped = skipped
    if items:
        summary.items = _write_rise(tasks_to_rise_rows(items), out / "rise", store)
        summary.rise = str(out / "rise")
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
