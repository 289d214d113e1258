"""``fashionlens evaluate classifier``: metrics JSON + confusion-matrix pictures for one split."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from fashionlens.evaluate.classification import classifier_metrics
from fashionlens.paths import runs_path
from fashionlens.train.samples import SampleDataset, read_samples

log = logging.getLogger(__name__)


def plot_confusion(matrix: np.ndarray, labels: list[str], path: str | Path, *, title: str) -> Path:
    """Row-normalised confusion matrix (rows = truth) with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_classifier_on_cache(weights: str | Path | None, cache_dir: str | Path, *, split: str = "test",
                                 out_dir: str | Path = runs_path("eval"), batch_size: int = 32) -> dict[str, Any]:
    """Evaluate a classifier on one split of a prepared sample cache; writes ``metrics.json`` and
    ``confusion_category.png`` / ``confusion_clothing10.png`` / ``confusion_object_type.png``."""
    from fashionlens.pipeline import TaggerConfig

    tagger = TaggerConfig(weights=None if weights is None else str(weights), whole_image=True).build()
    meta = tagger.meta
    samples = [s for s in read_samples(cache_dir) if s.split == split]
    if not samples:
        raise ValueError(f"no samples in split {split!r} of {cache_dir}")
    ds = SampleDataset(cache_dir, samples, meta.heads, mean=meta.mean, std=meta.std, size=meta.input_size)
    probs: dict[str, list[np.ndarray]] = {h.name: [] for h in meta.heads}
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(ds), batch_size), desc=f"evaluate {split}"):
        batch = np.stack([ds[i][0].numpy() for i in range(start, min(len(ds), start + batch_size))])
        for k, v in tagger.backend.run(batch).items():
            probs[k].append(v)
    P = {k: np.concatenate(v) for k, v in probs.items()}
    metrics = classifier_metrics(P, samples, meta.heads, thresholds=meta.thresholds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cat_values = list(meta.head("category").values)
    exact = [i for i, s in enumerate(samples) if len(s.categories) == 1]
    y = [cat_values.index(samples[i].categories[0]) for i in exact]
    present = sorted(set(y) | set(P["category"][exact].argmax(1).tolist()))
    cm = confusion_matrix(y, P["category"][exact].argmax(1), labels=present)
    pictures = [plot_confusion(cm, [cat_values[i] for i in present], out / "confusion_category.png",
                               title=f"category, {split} split (n={len(exact)})")]
    if "clothing10" in metrics:
        c10 = metrics["clothing10"]
        pictures.append(plot_confusion(np.array(c10["confusion"]), c10["labels"], out / "confusion_clothing10.png",
                                       title=f"clothing data set, 10 classes, {split} (n={c10['n']})"))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), "utf-8")
    summary = {
        "split": split, "n": len(samples), "model": tagger.model_info,
        "category_accuracy": metrics["category"]["accuracy"], "category_macro_f1": metrics["category"]["macro_f1"],
        "object_type_accuracy": metrics["object_type"]["accuracy"],
        "clothing10_accuracy": metrics.get("clothing10", {}).get("accuracy"),
        "rise_type_accuracy": metrics.get("rise_type", {}).get("accuracy"),
        "colours": {k: metrics["colours"][k] for k in ("macro_f1", "exact_match", "hamming_accuracy")}
        if "colours" in metrics else None,
        "per_class": {k: {m: round(v[m], 3) for m in ("precision", "recall")}
                      for k, v in metrics["category"]["per_class"].items()},
        "outputs": [str(out / "metrics.json")] + [str(p) for p in pictures],
    }
    return summary
