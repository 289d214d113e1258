"""Score the eye-labelled street set: annotator agreement, and ``fashionlens tag`` against it.

Protocol and file layout: ``docs/street_labels.md``. Two subcommands:

``agreement A.csv B.csv [--ids overlap_ids.txt]``
    On the garments both annotators labelled (restricted to ``--ids`` when given): top-colour
    exact match, colour-set Jaccard, pattern agreement and Cohen's kappa for pattern
    (scikit-learn), each on the garments where both gave a value (not ``unsure``), with its n.

``score RESULTS.jsonl LABELS.csv``
    Matches each labelled garment to a predicted garment of the same photo and object type and
    scores the prediction's colours and pattern (rule in :func:`match_photo`), per split
    (``train``/``val`` from ``--manifest``, default ``data/street_labels/garments.csv``) and
    over all. Result v2 fields that abstain (``"uncertain": true``, ``"colours": []``) count as
    not emitted: accuracy is then the precision of emitted values and ``coverage`` their share;
    for pattern the best guess (top candidate) is scored too. The CCP train photos were seen by the detector in training, so the ``val`` rows
    are the honest numbers.

Both print JSON (and write it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import cohen_kappa_score

from fashionlens.taxonomy import load_mapping, load_taxonomy

UNSURE = "unsure"
IOU_MIN = 0.5
INSIDE_MIN = 0.5  # a predicted shoe belongs to a labelled pair when this share of its box is inside it

Box = tuple[float, float, float, float]  # x, y, w, h


@dataclass(frozen=True)
class Label:
    """One annotator's label of one garment."""

    garment_id: str
    photo_id: str
    ccp_class: str
    object_type: str
    box: Box
    colours: tuple[str, ...]  # empty when unsure
    pattern: str | None  # None when unsure


@dataclass(frozen=True)
class Prediction:
    """The fields of one predicted garment that are scored."""

    object_type: str
    box: Box
    score: float
    colours: tuple[tuple[str, float | None, float], ...]  # (id, share, score) as emitted
    pattern: str | None  # as emitted; None when absent or abstained (result v2 "uncertain")
    pattern_best: str | None = None  # the best guess: ``pattern`` or, when abstained, the top candidate

    @property
    def top_colour(self) -> str | None:
        """The colour with the largest pixel share (colours without a share, such as
        ``multicolour``, only when no colour has one; then the highest-scored)."""
        with_share = [c for c in self.colours if c[1] is not None]
        if with_share:
            return max(with_share, key=lambda c: c[1])[0]  # type: ignore[arg-type, return-value]
        return max(self.colours, key=lambda c: c[2])[0] if self.colours else None


def _vocabulary() -> tuple[set[str], set[str]]:
    tax = load_taxonomy()
    return set(tax.attribute("colours").values), set(tax.attribute("pattern").values)


def read_labels(path: str | Path) -> dict[str, Label]:
    """Labels of one annotator CSV (``garment_id, photo_id, ccp_class, x, y, w, h, colours,
    pattern, annotator``), keyed by garment id; values checked against the taxonomy."""
    colours_ok, patterns_ok = _vocabulary()
    mapping = load_mapping("ccp")
    out: dict[str, Label] = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            cols = tuple(c for c in row["colours"].split(";") if c and c != UNSURE)
            bad = [c for c in cols if c not in colours_ok] + (
                [row["pattern"]] if row["pattern"] not in patterns_ok | {UNSURE} else [])
            if bad:
                raise ValueError(f"{path}:{n}: {bad} not in the taxonomy's colours/pattern (or '{UNSURE}')")
            mapped = mapping.resolve(row["ccp_class"])
            if mapped.object_type is None:
                raise ValueError(f"{path}:{n}: CCP class {row['ccp_class']!r} maps to no object type")
            if row["garment_id"] in out:
                raise ValueError(f"{path}:{n}: garment {row['garment_id']} labelled twice")
            out[row["garment_id"]] = Label(
                row["garment_id"], row["photo_id"], row["ccp_class"], str(mapped.object_type),
                tuple(float(row[k]) for k in ("x", "y", "w", "h")),  # type: ignore[arg-type]
                cols, None if row["pattern"] == UNSURE else row["pattern"])
    return out


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| of two colour sets (1.0 when both are empty)."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def agreement(a: dict[str, Label], b: dict[str, Label], ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Agreement of two annotators on the garments both labelled (within ``ids`` if given)."""
    common = sorted(set(a) & set(b) & (set(ids) if ids is not None else set(a)))
    colour_pairs = [(a[g], b[g]) for g in common if a[g].colours and b[g].colours]
    pattern_pairs = [(a[g].pattern, b[g].pattern) for g in common if a[g].pattern and b[g].pattern]
    out: dict[str, Any] = {
        "garments_in_both": len(common),
        "ids_requested": len(ids) if ids is not None else None,
        "colours": {
            "n": len(colour_pairs),
            "top_colour_agreement": _mean([float(x.colours[0] == y.colours[0]) for x, y in colour_pairs]),
            "top_colour_in_other_set": _mean([float(x.colours[0] in y.colours and y.colours[0] in x.colours)
                                              for x, y in colour_pairs]),
            "colour_set_jaccard": _mean([jaccard(x.colours, y.colours) for x, y in colour_pairs]),
            "top_colour_kappa": (round(float(cohen_kappa_score([x.colours[0] for x, _ in colour_pairs],
                                                               [y.colours[0] for _, y in colour_pairs])), 4)
                                 if len(colour_pairs) > 1 else None),
        },
        "pattern": {
            "n": len(pattern_pairs),
            "agreement": _mean([float(x == y) for x, y in pattern_pairs]),
            "cohen_kappa": (round(float(cohen_kappa_score([x for x, _ in pattern_pairs], [y for _, y in pattern_pairs])), 4)
                            if len(pattern_pairs) > 1 else None),
            "plain_share_a": _mean([float(x == "plain") for x, _ in pattern_pairs]),
            "plain_share_b": _mean([float(y == "plain") for _, y in pattern_pairs]),
        },
        "unsure": {"a": sum(1 for g in common if not a[g].colours or not a[g].pattern),
                   "b": sum(1 for g in common if not b[g].colours or not b[g].pattern)},
    }
    return out


def iou(p: Box, q: Box) -> float:
    """Intersection over union of two ``xywh`` boxes."""
    ix = max(0.0, min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0]))
    iy = max(0.0, min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1]))
    inter = ix * iy
    union = p[2] * p[3] + q[2] * q[3] - inter
    return inter / union if union > 0 else 0.0


def inside_share(p: Box, outer: Box) -> float:
    """Share of box ``p``'s area inside box ``outer``."""
    ix = max(0.0, min(p[0] + p[2], outer[0] + outer[2]) - max(p[0], outer[0]))
    iy = max(0.0, min(p[1] + p[3], outer[1] + outer[3]) - max(p[1], outer[1]))
    return ix * iy / (p[2] * p[3]) if p[2] * p[3] > 0 else 0.0


def _union(boxes: Sequence[Box]) -> Box:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def match_photo(labels: Sequence[Label], preds: Sequence[Prediction]) -> dict[str, Prediction]:
    """Garment id → matched prediction for one photo.

    One-to-one, greedy by IoU: a labelled garment and a prediction of the **same object type**
    pair up when their boxes have IoU ≥ 0.5, highest IoU first. Footwear labels are the pair of
    shoes (one CCP class region) while the detector boxes single shoes, so a footwear label left
    unmatched takes the still-free predicted footwear whose boxes lie at least half inside its
    box, if the union of those boxes has IoU ≥ 0.5 with it; the highest-scored of them is scored.
    """
    pairs = sorted(((iou(l.box, p.box), i, j) for i, l in enumerate(labels) for j, p in enumerate(preds)
                    if l.object_type == p.object_type), reverse=True)
    out: dict[str, Prediction] = {}
    used: set[int] = set()
    for v, i, j in pairs:
        if v < IOU_MIN:
            break
        if labels[i].garment_id in out or j in used:
            continue
        out[labels[i].garment_id] = preds[j]
        used.add(j)
    for lab in labels:
        if lab.garment_id in out or lab.object_type != "footwear":
            continue
        group = [j for j, p in enumerate(preds) if j not in used and p.object_type == "footwear"
                 and inside_share(p.box, lab.box) >= INSIDE_MIN]
        if group and iou(_union([preds[j].box for j in group]), lab.box) >= IOU_MIN:
            best = max(group, key=lambda j: preds[j].score)
            out[lab.garment_id] = preds[best]
            used.update(group)
    return out


def read_predictions(path: str | Path) -> dict[str, list[Prediction]]:
    """Photo id (file stem) → predicted garments of a ``fashionlens tag`` JSONL file."""
    out: dict[str, list[Prediction]] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if "image" not in rec or "garments" not in rec:
                raise ValueError(f"{path}:{n}: expected a fashionlens result with 'image' and 'garments'")
            photo = Path(rec["image"]["path"]).stem
            preds = []
            for g in rec["garments"]:
                attrs = g.get("attributes", {})
                pat = attrs.get("pattern") if isinstance(attrs.get("pattern"), dict) else {}
                candidates = pat.get("candidates") or []
                preds.append(Prediction(
                    str(g.get("object_type")), tuple(float(v) for v in g["bbox"]),  # type: ignore[arg-type]
                    float(g.get("score") or 0.0),
                    tuple((c["id"], c.get("share"), float(c.get("score") or 0.0)) for c in attrs.get("colours", [])
                          if c.get("id") is not None),
                    pat.get("id"),
                    pat.get("id") or (candidates[0].get("id") if candidates else None)))
            out[photo] = preds
    return out


def score(labels: dict[str, Label], preds: dict[str, list[Prediction]],
          splits: dict[str, str] | None = None) -> dict[str, Any]:
    """Colour and pattern accuracy of ``preds`` on ``labels`` per split and over all (see module doc)."""
    by_photo: dict[str, list[Label]] = defaultdict(list)
    for lab in labels.values():
        by_photo[lab.photo_id].append(lab)
    missing = sorted(p for p in by_photo if p not in preds)
    matched: dict[str, Prediction] = {}
    for photo, labs in by_photo.items():
        matched.update(match_photo(labs, preds.get(photo, [])))
    groups: dict[str, list[str]] = defaultdict(list)
    for gid in labels:
        groups["all"].append(gid)
        if splits is not None:
            groups[splits[gid]].append(gid)
    return {"photos_without_results": missing,
            **{name: _score_group([labels[g] for g in ids], matched) for name, ids in sorted(groups.items())}}


def _score_group(labs: Sequence[Label], matched: dict[str, Prediction]) -> dict[str, Any]:
    hit = [lab for lab in labs if lab.garment_id in matched]
    col = [lab for lab in hit if lab.colours]
    with_pred = [lab for lab in col if matched[lab.garment_id].colours]
    pat = [lab for lab in hit if lab.pattern]
    pat_pred = [lab for lab in pat if matched[lab.garment_id].pattern]
    pat_best = [lab for lab in pat if matched[lab.garment_id].pattern_best]
    first = Counter(lab.colours[0] for lab in col).most_common(1)
    majority = first[0][0] if first else None
    return {
        "labelled": len(labs),
        "matched": len(hit),
        "matched_share": _mean([float(lab.garment_id in matched) for lab in labs]),
        "matched_by_object_type": dict(sorted(Counter(lab.object_type for lab in hit).items())),
        "unmatched_by_object_type": dict(sorted(Counter(lab.object_type for lab in labs if lab.garment_id not in matched).items())),
        "colour": {
            "n": len(col),
            "n_with_predicted_colours": len(with_pred),
            "coverage": _mean([float(lab in with_pred) for lab in col]),
            "top_colour_accuracy": _mean([float(matched[lab.garment_id].top_colour == lab.colours[0]) for lab in with_pred]),
            "top_colour_in_label_set": _mean([float(matched[lab.garment_id].top_colour in lab.colours) for lab in with_pred]),
            "colour_set_jaccard": _mean([jaccard([c[0] for c in matched[lab.garment_id].colours], lab.colours)
                                         for lab in with_pred]),
            "baseline_always": majority,
            "baseline_top_colour_accuracy": _mean([float(lab.colours[0] == majority) for lab in with_pred]),
        },
        "pattern": {
            "n": len(pat),
            "n_with_predicted_pattern": len(pat_pred),
            "coverage": _mean([float(lab in pat_pred) for lab in pat]),
            "accuracy": _mean([float(matched[lab.garment_id].pattern == lab.pattern) for lab in pat_pred]),
            "best_guess_accuracy": _mean([float(matched[lab.garment_id].pattern_best == lab.pattern) for lab in pat_best]),
            "best_guess_accuracy_on_plain": _mean([float(matched[lab.garment_id].pattern_best == "plain")
                                                   for lab in pat_best if lab.pattern == "plain"]),
            "best_guess_accuracy_on_not_plain": _mean([float(matched[lab.garment_id].pattern_best == lab.pattern)
                                                       for lab in pat_best if lab.pattern != "plain"]),
            "baseline_always_plain": _mean([float(lab.pattern == "plain") for lab in pat]),
            "predicted_best_guess": dict(Counter(matched[lab.garment_id].pattern_best for lab in pat_best).most_common()),
        },
    }


def _read_splits(manifest: str | Path) -> dict[str, str]:
    with open(manifest, newline="") as f:
        return {r["garment_id"]: r["split"] for r in csv.DictReader(f)}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("agreement", help="agreement of two annotators")
    a.add_argument("a", type=Path)
    a.add_argument("b", type=Path)
    a.add_argument("--ids", type=Path, help="one garment id a line (the overlap)")
    s = sub.add_parser("score", help="score fashionlens results against one annotator")
    s.add_argument("results", type=Path, help="fashionlens tag JSONL of the labelled photos")
    s.add_argument("labels", type=Path)
    s.add_argument("--manifest", type=Path, default=Path(__file__).resolve().parents[2] / "data/street_labels/garments.csv",
                   help="garment list with a split column (garment_id → train/val) for per-split numbers")
    for p in (a, s):
        p.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "agreement":
        ids = [x.strip() for x in args.ids.read_text().splitlines() if x.strip()] if args.ids else None
        result = agreement(read_labels(args.a), read_labels(args.b), ids)
    else:
        labels = read_labels(args.labels)
        splits = _read_splits(args.manifest) if args.manifest else None
        if splits is not None and (missing := sorted(set(labels) - set(splits))):
            raise ValueError(f"{args.manifest}: no split for {len(missing)} labelled garments, e.g. {missing[:3]}")
        result = score(labels, read_predictions(args.results), splits)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
