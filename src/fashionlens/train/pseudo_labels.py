"""Tag-filtered pseudo-labels: a teacher detector boxes photos that carry only image-level tags (issue 28).

CCP's 911 further street photos (ids above 1004, ``ccp/tags.csv``) name the CCP classes present in each
photo but have no boxes. A trained detector (the *teacher*) proposes boxes; the tags then decide:

* **tag → object type**: each CCP class name maps to an object type through the CCP taxonomy mapping
  (``mappings/ccp.yaml``, the table that makes the masked photos' instances; :func:`tag_object_types`).
  Unmapped classes (skin, hair, jewellery, hosiery, underwear, small accessories) name no type, as in the
  masked photos where their pixels are background. Two unmapped classes cover garments of several types,
  so they make those types *ambiguous* (:data:`AMBIGUOUS_TAGS`: ``suit`` → upper- and lower-body,
  ``swimwear`` → upper-, lower- and full-body) unless another tag names the type;
* a candidate box whose type no tag names is **dropped** (``ruled_out``): the tags say that type is absent;
  a candidate of an ambiguous type is dropped and its type ignored;
* a candidate of a named type is **kept** when its calibrated score (the detector's sidecar, fitted on CCP
  val) is at least ``keep_score``; one in ``[uncertain_score, keep_score)`` that overlaps no kept box of its
  type (IoU < ``match_iou``) is **uncertain**: not a box, and its type is ignored in this photo (it may be a
  second garment of the type); lower candidates are dropped (``low``);
* **ignored types** of a photo = named types with no kept box ∪ types with an unmatched uncertain box ∪
  ambiguous types. Training masks them out of the classification loss for that photo (neither positive
  nor negative there); every type the tags do not name is a true negative everywhere in the photo.

The result is a COCO file (:func:`write_pseudo_coco`): one image entry per photo with ``tags`` and
``ignore_types``; box-only annotations (``bbox``, ``category_id`` = object type, ``score``, no
``segmentation``), so the mask heads do not learn from them. :func:`read_pseudo_coco` turns it back into
:class:`~fashionlens.io.records.ImageRecord` s with ``meta["ignore_types"]``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.records import GarmentAnnotation, ImageRecord
from fashionlens.taxonomy import TaxonomyError, load_mapping

#: unmapped CCP classes that cover garments of several object types (a suit is jacket + trousers)
AMBIGUOUS_TAGS: dict[str, tuple[str, ...]] = {
    "suit": ("upper-body", "lower-body"),
    "swimwear": ("upper-body", "lower-body", "full-body"),
}

#: photos whose id is at most this one have CCP masks (the masked 873 photos the CCP split is made over)
CCP_LAST_MASKED_ID = 1004

FORMAT = "fashionlens/pseudo-labels/v1"


@dataclass(frozen=True)
class PseudoLabelRules:
    """Thresholds on the teacher's **calibrated** scores (see the module docstring)."""

    keep_score: float
    uncertain_score: float
    match_iou: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.uncertain_score <= self.keep_score <= 1.0:
            raise ValueError("expected 0 <= uncertain_score <= keep_score <= 1, got "
                             f"uncertain_score={self.uncertain_score}, keep_score={self.keep_score}")
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"match_iou: expected a number in (0, 1], got {self.match_iou}")


@dataclass(frozen=True)
class Candidate:
    """One teacher detection: ``xyxy`` in photo pixels, object type, calibrated score."""

    xyxy: tuple[float, float, float, float]
    object_type: str
    score: float


@dataclass
class PhotoPseudoLabels:
    """The outcome of the rules for one photo."""

    kept: list[Candidate]
    ignore_types: list[str]
    named_types: list[str]
    outcome: Counter[str] = field(default_factory=Counter)  # candidate → kept/ruled_out/ambiguous/uncertain/low/duplicate


def tag_object_types(tags: Iterable[str]) -> tuple[set[str], set[str]]:
    """``(named, ambiguous)`` object types of a photo's CCP tags (rules in the module docstring).

    Raises ``ValueError`` on a tag that is not a CCP class of the mapping."""
    mapping = load_mapping("ccp")
    named: set[str] = set()
    ambiguous: set[str] = set()
    for tag in tags:
        if tag in AMBIGUOUS_TAGS:
            ambiguous.update(AMBIGUOUS_TAGS[tag])
            continue
        try:
            resolved = mapping.resolve(tag)
        except TaxonomyError as exc:
            raise ValueError(f"unknown CCP tag {tag!r}: expected a class name of the CCP mapping") from exc
        if resolved.is_mapped and resolved.object_type is not None:
            named.add(resolved.object_type)
    return named, ambiguous - named


def tag_type_table() -> dict[str, str | None]:
    """CCP class name → object type (``None``: names no type; ambiguous tags give their types joined by ``|``)."""
    mapping = load_mapping("ccp")
    table: dict[str, str | None] = {}
    for label in mapping.labels:
        if label in AMBIGUOUS_TAGS:
            table[label] = "|".join(AMBIGUOUS_TAGS[label])
            continue
        resolved = mapping.resolve(label)
        table[label] = resolved.object_type if resolved.is_mapped else None
    return table


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def filter_candidates(candidates: Sequence[Candidate], tags: Iterable[str], rules: PseudoLabelRules
                      ) -> PhotoPseudoLabels:
    """Apply the tag rules of the module docstring to one photo's candidates."""
    named, ambiguous = tag_object_types(tags)
    outcome: Counter[str] = Counter()
    kept: list[Candidate] = []
    uncertain: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: -c.score):
        if c.object_type in ambiguous:
            outcome["ambiguous"] += 1
        elif c.object_type not in named:
            outcome["ruled_out"] += 1
        elif c.score >= rules.keep_score:
            kept.append(c)
            outcome["kept"] += 1
        elif c.score >= rules.uncertain_score:
            uncertain.append(c)
        else:
            outcome["low"] += 1
    ignore = set(ambiguous) | (named - {c.object_type for c in kept})
    for u in uncertain:
        if any(k.object_type == u.object_type and _iou(k.xyxy, u.xyxy) >= rules.match_iou for k in kept):
            outcome["duplicate"] += 1
        else:
            outcome["uncertain"] += 1
            ignore.add(u.object_type)
    return PhotoPseudoLabels(kept=kept, ignore_types=sorted(ignore), named_types=sorted(named), outcome=outcome)


def read_tags(path: str | Path) -> dict[str, list[str]]:
    """``tags.csv`` (``image,tags``; space-separated CCP class names) → photo id → tags."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"image", "tags"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a CSV with columns image,tags; got {reader.fieldnames}")
        for row in reader:
            image = row["image"].strip()
            if not image:
                continue
            out[image] = (row["tags"] or "").split()
    return out


def check_outside_masked_split(photo_ids: Iterable[str], masked_ids: Iterable[str]) -> None:
    """Raise when a tag-only photo is also a masked CCP photo (those are split into train/val/test)."""
    clash = sorted(set(photo_ids) & set(masked_ids))
    if clash:
        raise ValueError(f"{len(clash)} tag-only photos also have CCP masks (e.g. {clash[:5]}); "
                         "pseudo-labels must stay out of the masked photos' val/test splits")


def calibrated(scores: np.ndarray, calibration: Any | None) -> np.ndarray:
    """Teacher scores through the detector's calibration sidecar (head ``garment``); as they are without one."""
    scores = np.asarray(scores, np.float64)
    if calibration is None or not len(scores) or "garment" not in calibration.heads:
        return scores
    return np.clip(calibration.heads["garment"].apply(scores[:, None])[:, 0], 0.0, 1.0)


def teacher_candidates(detector: Any, photos: Mapping[str, Path], *, calibration: Any | None,
                       hflip_tta: bool = False, progress: bool = True,
                       done: Mapping[str, tuple[list[Candidate], tuple[int, int]]] | None = None,
                       checkpoint: Any | None = None, checkpoint_every: int = 50
                       ) -> dict[str, tuple[list[Candidate], tuple[int, int]]]:
    """Run ``detector`` (a :class:`~fashionlens.detection.detector.GarmentDetector`) on each photo: its
    candidates down to raw score 0.05 after its own NMS, scores calibrated through ``calibration``;
    ``hflip_tta`` also runs the mirrored photo and merges both (:func:`_merge_tta`).
    Photos in ``done`` are taken from it; ``checkpoint(result_so_far)`` is called every ``checkpoint_every``
    new photos (so an interrupted run resumes). Returns photo id → (candidates, (width, height))."""
    from fashionlens.detection.settings import DetectSettings
    from fashionlens.imageio import load_image
    from fashionlens.models.detection_limits import DetectionLimits

    limits = DetectionLimits(0.05, detector.nms_thresh, 100)
    out: dict[str, tuple[list[Candidate], tuple[int, int]]] = {p: v for p, v in (done or {}).items() if p in photos}
    items = sorted((p, path) for p, path in photos.items() if p not in out)
    iterator: Iterable[tuple[str, Path]] = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="teacher", unit="photo")
    for new, (pid, path) in enumerate(iterator, start=1):
        rgb = load_image(path).rgb
        h, w = rgb.shape[:2]
        g = detector.candidates(rgb, limits, DetectSettings())
        boxes = np.asarray(g.xyxy, np.float64).reshape(-1, 4)
        types = list(g.object_type)
        scores = np.asarray(g.confidence, np.float64)
        if hflip_tta:
            f = detector.candidates(np.ascontiguousarray(rgb[:, ::-1]), limits, DetectSettings())
            fb = np.asarray(f.xyxy, np.float64).reshape(-1, 4).copy()
            fb[:, [0, 2]] = w - fb[:, [2, 0]]
            boxes, types, scores = _merge_tta(boxes, types, scores, fb, list(f.object_type),
                                              np.asarray(f.confidence, np.float64))
        cal = calibrated(scores, calibration)
        out[pid] = ([Candidate(tuple(float(v) for v in b), t, float(s)) for b, t, s in zip(boxes, types, cal)], (w, h))
        if checkpoint is not None and new % checkpoint_every == 0:
            checkpoint(out)
    return out


def label_photos(candidates: Mapping[str, tuple[list[Candidate], tuple[int, int]]], tags: Mapping[str, list[str]],
                 rules: PseudoLabelRules) -> dict[str, tuple[PhotoPseudoLabels, tuple[int, int]]]:
    """:func:`filter_candidates` on every photo of :func:`teacher_candidates`' output."""
    return {pid: (filter_candidates(cands, tags[pid], rules), size) for pid, (cands, size) in candidates.items()}


def _merge_tta(boxes: np.ndarray, types: list[str], scores: np.ndarray, fboxes: np.ndarray, ftypes: list[str],
               fscores: np.ndarray, iou: float = 0.6) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Original + mirrored detections: a pair of the same type with IoU ≥ ``iou`` becomes one box (the mean
    box, the mean score); an unpaired detection keeps half its score (one view of two saw it)."""
    used = set()
    ob, ot, os_ = [], [], []
    for b, t, s in zip(boxes, types, scores):
        best, best_iou = -1, iou
        for j, (fb, ft) in enumerate(zip(fboxes, ftypes)):
            if j in used or ft != t:
                continue
            v = _iou(b, fb)
            if v >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            used.add(best)
            ob.append((b + fboxes[best]) / 2)
            os_.append((s + fscores[best]) / 2)
        else:
            ob.append(b)
            os_.append(s / 2)
        ot.append(t)
    for j, (fb, ft, fs) in enumerate(zip(fboxes, ftypes, fscores)):
        if j not in used:
            ob.append(fb)
            ot.append(ft)
            os_.append(fs / 2)
    return np.asarray(ob, np.float64).reshape(-1, 4), ot, np.asarray(os_, np.float64)


def summarize(labels: Mapping[str, tuple[PhotoPseudoLabels, tuple[int, int]]]) -> dict[str, Any]:
    """Counts for the report: photos, candidate outcomes, kept boxes and ignored photo-types per type."""
    outcome: Counter[str] = Counter()
    kept_by_type: Counter[str] = Counter()
    ignored_by_type: Counter[str] = Counter()
    named_by_type: Counter[str] = Counter()
    for pl, _ in labels.values():
        outcome.update(pl.outcome)
        kept_by_type.update(c.object_type for c in pl.kept)
        ignored_by_type.update(pl.ignore_types)
        named_by_type.update(pl.named_types)
    return {"photos": len(labels), "candidates": dict(sorted(outcome.items())),
            "kept_boxes_by_type": dict(sorted(kept_by_type.items())),
            "photos_naming_type": dict(sorted(named_by_type.items())),
            "photos_ignoring_type": dict(sorted(ignored_by_type.items())),
            "photos_without_ignored_types": sum(1 for pl, _ in labels.values() if not pl.ignore_types),
            "photos_without_boxes": sum(1 for pl, _ in labels.values() if not pl.kept)}


def write_pseudo_coco(labels: Mapping[str, tuple[PhotoPseudoLabels, tuple[int, int]]], out: str | Path, *,
                      images: str, file_names: Mapping[str, str], tags: Mapping[str, list[str]],
                      info: Mapping[str, Any]) -> dict[str, Any]:
    """Write the COCO file of the module docstring; ``images``: the photo folder, relative to the data root
    (or absolute); returns :func:`summarize`'s counts (also stored under ``info.summary``)."""
    from fashionlens.io.atomic import atomic_write

    type_names = _object_types()
    cat_id = {t: i + 1 for i, t in enumerate(type_names)}
    coco_images, annotations = [], []
    for image_id, pid in enumerate(sorted(labels), start=1):
        pl, (w, h) = labels[pid]
        coco_images.append({"id": image_id, "file_name": file_names[pid], "width": w, "height": h,
                            "tags": list(tags[pid]), "ignore_types": pl.ignore_types,
                            "named_types": pl.named_types})
        for c in pl.kept:
            x0, y0, x1, y1 = c.xyxy
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat_id[c.object_type],
                                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                "area": round((x1 - x0) * (y1 - y0), 1), "iscrowd": 0, "score": round(c.score, 4)})
    summary = summarize(labels)
    doc = {"info": {"format": FORMAT, "images": images, **info, "summary": summary},
           "images": coco_images, "annotations": annotations,
           "categories": [{"id": cat_id[t], "name": t} for t in type_names]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1), encoding="utf-8"))
    return summary


def _object_types() -> list[str]:
    from fashionlens.taxonomy import load_taxonomy

    return list(load_taxonomy().object_types)


def read_pseudo_coco(path: str | Path, data_root: str | Path) -> list[ImageRecord]:
    """Records of a pseudo-label file: box-only garments (object type only) and ``meta["ignore_types"]`` /
    ``meta["tags"]`` per photo; source
    ``pseudo-<name of the photo folder's data set>``, one group per photo."""
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    info = doc.get("info") or {}
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: expected a pseudo-label file (info.format {FORMAT!r}), got {info.get('format')!r}")
    images = Path(info["images"])
    folder = images if images.is_absolute() else Path(data_root) / images
    types = {c["id"]: c["name"] for c in doc["categories"]}
    known = set(_object_types())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    source = f"pseudo-{images.parts[0] if len(images.parts) > 1 else images.name}"
    records = []
    for im in doc["images"]:
        bad = [t for t in im.get("ignore_types", []) if t not in known]
        if bad:
            raise ValueError(f"{path}: image {im['file_name']} ignores unknown object types {bad}")
        garments = []
        for a in by_image.get(im["id"], []):
            x, y, bw, bh = (float(v) for v in a["bbox"])
            garments.append(GarmentAnnotation(object_type=types[a["category_id"]], bbox_xyxy=(x, y, x + bw, y + bh),
                                              source_label=f"pseudo:{types[a['category_id']]}"))
        records.append(ImageRecord(path=folder / im["file_name"], source=source, group=f"{source}/{im['file_name']}",
                                   garments=garments, width=im.get("width"), height=im.get("height"),
                                   meta={"ignore_types": list(im.get("ignore_types", [])), "tags": im.get("tags", [])}))
    return records


def finite_threshold(value: float, what: str) -> float:
    """``value`` when finite, else a ``ValueError`` naming ``what`` (an operating point no threshold reaches)."""
    if not math.isfinite(value):
        raise ValueError(f"{what}: the calibration's operating curve never reaches this precision")
    return float(value)


def rule_quality(labels: Mapping[str, tuple[PhotoPseudoLabels, tuple[int, int]]],
                 truth: Mapping[str, Sequence[GarmentAnnotation]], *, iou: float = 0.5) -> dict[str, Any]:
    """How the rules fare on photos with ground truth (run on CCP val with tags read off its masks).

    ``precision``: kept boxes matching a same-type ground-truth garment at IoU ≥ ``iou`` (greedy by score);
    ``recall``: ground-truth garments so matched; ``false_background``: ground-truth garments neither matched
    nor of a type ignored in their photo (what training would wrongly learn as background);
    ``ignored_share``: ground-truth garments of an ignored type (no signal either way)."""
    kept = correct = gt_total = matched = ignored = false_bg = 0
    for pid, (pl, _) in labels.items():
        gts = [g for g in truth[pid] if g.object_type is not None and g.bbox_xyxy is not None]
        gt_total += len(gts)
        used: set[int] = set()
        for c in sorted(pl.kept, key=lambda c: -c.score):
            kept += 1
            best, best_iou = -1, iou
            for j, g in enumerate(gts):
                if j in used or g.object_type != c.object_type:
                    continue
                v = _iou(c.xyxy, g.bbox_xyxy)  # type: ignore[arg-type]
                if v >= best_iou:
                    best, best_iou = j, v
            if best >= 0:
                used.add(best)
                correct += 1
        matched += len(used)
        for j, g in enumerate(gts):
            if j in used:
                continue
            if g.object_type in pl.ignore_types:
                ignored += 1
            else:
                false_bg += 1
    return {"photos": len(labels), "kept": kept, "precision": round(correct / kept, 4) if kept else None,
            "garments": gt_total, "recall": round(matched / gt_total, 4) if gt_total else None,
            "ignored_share": round(ignored / gt_total, 4) if gt_total else None,
            "false_background": round(false_bg / gt_total, 4) if gt_total else None}


def tags_of_mask(class_mask: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The CCP class names present in a class-index mask (what ``tags.csv`` lists for tag-only photos)."""
    return [labels[int(v)] for v in np.unique(class_mask)]


def tag_ids_of_records(records: Sequence[ImageRecord]) -> tuple[dict[str, Path], dict[str, list[GarmentAnnotation]]]:
    """Photo id (file stem) → path and → ground-truth garments, for :func:`rule_quality`."""
    return ({Path(r.path).stem: Path(r.path) for r in records},
            {Path(r.path).stem: list(r.garments) for r in records})


def save_candidates(path: str | Path, candidates: Mapping[str, tuple[list[Candidate], tuple[int, int]]],
                    key: Mapping[str, Any]) -> None:
    """Store teacher candidates (so other thresholds re-filter them without running the teacher again)."""
    from fashionlens.io.atomic import atomic_write

    doc = {"key": dict(key), "photos": {pid: {"size": list(size), "candidates": [
        [*(round(v, 2) for v in c.xyxy), c.object_type, round(c.score, 6)] for c in cands]}
        for pid, (cands, size) in candidates.items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(doc), encoding="utf-8"))


def load_candidates(path: str | Path, key: Mapping[str, Any], photos: Iterable[str]
                    ) -> dict[str, tuple[list[Candidate], tuple[int, int]]]:
    """Candidates stored by :func:`save_candidates` under the same ``key``, for those of ``photos`` it holds
    (empty when there is no such file or it was made with another key)."""
    path = Path(path)
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("key") != dict(key):
        return {}
    wanted = set(photos)
    return {pid: ([Candidate((c[0], c[1], c[2], c[3]), c[4], c[5]) for c in v["candidates"]],
                  (int(v["size"][0]), int(v["size"][1]))) for pid, v in doc["photos"].items() if pid in wanted}
