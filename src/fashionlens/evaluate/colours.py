"""How well ``tag`` names colours: the colours in its records against RISE's colour labels.

:func:`evaluate_colours` decodes each photo as ``tag`` does, tags it twice — with the classifier's
colour head alone and with the pixel colour model joined in (:mod:`fashionlens.models.pixel_colours`) — in
whole-image mode, or with ``detect=True`` in ``tag``'s default detect mode (the top-scoring garment's
colours) — and scores the colour ids of the results: macro-F1 over the
colours present in the labels (the issue's metric), micro-F1, exact match, Hamming accuracy and
per-colour F1, plus how many photos had a plain backdrop (where the pixel model can join).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import f1_score

from fashionlens.io.datasets import ImageRecord, read_dataset
from fashionlens.io.splits import group_split
from fashionlens.result import TagResult

if TYPE_CHECKING:
    from fashionlens.models.pixel_colours import PixelColourModel


def labelled_colour_records(data_root: str | Path, *, seed: int = 0) -> dict[str, list[ImageRecord]]:
    """RISE photos with colour labels, split like the rest of the project (group-aware, ``seed``).

    The split is made on *all* RISE photos, then filtered: splitting only the labelled ones would
    give another split, and the classifier's training photos would leak into validation and test."""
    splits = group_split(read_dataset("rise", data_root), seed=seed)
    return {k: [r for r in v if r.garments and r.garments[0].attributes.get("colours")] for k, v in splits.items()}


def colour_targets(records: Sequence[ImageRecord], values: Sequence[str]) -> np.ndarray:
    """``(n, K)`` bool: each record's colour labels over ``values`` (labels outside ``values`` are dropped)."""
    index = {v: k for k, v in enumerate(values)}
    y = np.zeros((len(records), len(values)), bool)
    for i, r in enumerate(records):
        for c in r.garments[0].attributes.get("colours", ()):
            if c in index:
                y[i, index[c]] = True
    return y


def colour_macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the colours that occur in ``y`` (absent colours would count as 0 or 1 arbitrarily)."""
    present = np.flatnonzero(y.any(0))
    if not len(present):
        raise ValueError("no colour occurs in the labels; cannot compute macro-F1")
    return float(f1_score(y[:, present], pred[:, present], average="macro", zero_division=0))


def colour_scores(y: np.ndarray, pred: np.ndarray, values: Sequence[str]) -> dict[str, Any]:
    """Macro-/micro-F1, exact match, Hamming accuracy and per-colour F1 (with support)."""
    if y.shape != pred.shape or y.shape[1] != len(values):
        raise ValueError(f"expected labels and predictions of shape (n, {len(values)}), got {y.shape} and {pred.shape}")
    return {
        "n": len(y),
        "macro_f1": colour_macro_f1(y, pred),
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "exact_match": float((y == pred).all(1).mean()),
        "hamming_accuracy": float((y == pred).mean()),
        "per_colour": {v: {"support": int(y[:, k].sum()),
                           "f1": float(f1_score(y[:, k], pred[:, k], zero_division=0))}
                       for k, v in enumerate(values) if y[:, k].any() or pred[:, k].any()},
    }


def _tagged_colours(results: Sequence[TagResult], values: Sequence[str]) -> np.ndarray:
    """The colours of each result's top-scoring garment (scores compared as ``tag`` writes them, 4 decimals)."""
    index = {v: k for k, v in enumerate(values)}
    pred = np.zeros((len(results), len(values)), bool)
    for i, result in enumerate(results):
        if result.error is not None:
            raise ValueError(f"{result.path}: could not be tagged ({result.error.message})")
        g = result.garments
        top = max(g, key=lambda j: round(float(g.confidence[j]), 4))
        colours = g.attributes[top].get("colours", []) if g.attributes is not None else []
        for c in colours if isinstance(colours, list) else []:
            pred[i, index[c.id]] = True
    return pred


def evaluate_colours(records: Sequence[ImageRecord], colour_model: PixelColourModel | str | Path | None = None, *,
                     classifier: str | Path | None = None, threads: int | None = 1, batch_size: int = 32,
                     progress: bool = True, detect: bool = False) -> dict[str, Any]:
    """``tag``'s colours on ``records`` with the head alone and with ``colour_model`` (default: shipped);
    ``detect``: through the shipped detector, as ``tag`` runs by default (else whole-image mode)."""
    from tqdm import tqdm

    from fashionlens.colours.naming import whole_image_pixels
    from fashionlens.imageio import load_image
    from fashionlens.pipeline import DEFAULT_COLOUR_MODEL, Tagger
    from fashionlens.jobs.local import DETECT_MIN_SIDE

    if not records:
        raise ValueError("expected labelled photos to evaluate, got none")
    detector = None
    if detect:
        from fashionlens.detection.detector import GarmentDetector

        detector = GarmentDetector(threads=threads)
    tagger = Tagger(classifier, threads=threads, colour_model=colour_model or DEFAULT_COLOUR_MODEL, detector=detector)
    if tagger.colour_model is None:
        raise ValueError("the classifier's colour head does not match the pixel colour model's colours")
    model = tagger.colour_model
    values = tagger.meta.head("colours").values
    y = colour_targets(records, values)
    outputs: dict[str, list[TagResult]] = {"head": [], "head+pixels": []}
    masked = 0
    for start in tqdm(range(0, len(records), batch_size), desc="colours", unit="batch", disable=not progress):
        batch = records[start:start + batch_size]
        images = [load_image(r.path, min_side=DETECT_MIN_SIDE if detect else tagger.input_size) for r in batch]
        paths = [str(r.path) for r in batch]
        masked += sum(whole_image_pixels(im.rgb).masked for im in images)
        tagger.colour_model = None
        outputs["head"] += tagger.tag(images, paths)
        tagger.colour_model = model
        outputs["head+pixels"] += tagger.tag(images, paths)
    result: dict[str, Any] = {"photos": len(records), "mode": "detect" if detect else "whole_image",
                              "plain_backdrop": masked}
    for name, results in outputs.items():
        result[name] = colour_scores(y, _tagged_colours(results, values), values)
    return result


def plot_colour_f1(result: dict[str, Any], path: str | Path) -> Path:
    """A bar chart of per-colour F1 (head alone vs head + pixels) with each colour's support."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head, both = result["head"]["per_colour"], result["head+pixels"]["per_colour"]
    names = sorted(set(head) | set(both), key=lambda c: -max(head.get(c, {}).get("support", 0),
                                                              both.get(c, {}).get("support", 0)))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 3.6), dpi=110)
    for dx, (label, per) in zip((-0.2, 0.2), (("head", head), ("head + pixels", both))):
        ax.bar(x + dx, [per.get(c, {}).get("f1", 0.0) for c in names], width=0.4,
               label=f"{label} (macro-F1 {result['head' if per is head else 'head+pixels']['macro_f1']:.3f})")
    support = {c: max(head.get(c, {}).get("support", 0), both.get(c, {}).get("support", 0)) for c in names}
    ax.set_xticks(x, [f"{c}\n{support[c]}" for c in names], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title(f"colour F1 per colour ({result.get('split', '')}, n = {result['head']['n']}; number = labelled photos)",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
