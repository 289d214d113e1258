"""Active-learning simulation (issue 25, item 5): does reviewing the garments the review queue picks improve the
classifier more than reviewing as many random ones? A benchmark, not a test; results in docs/experiments.md.

The loop, on the classifier recipe's own split (configs/classifier_lite0_cpu.yaml: clothing + RISE + CCP crops,
group-aware 70/15/15, seed 0):

* the **validation** crops are the unlabelled pool: they are tagged by the shipped model exactly as a user's
  photos are (``fashionlens tag --whole-image --embed``, calibrated scores, v2 unsure fields; each crop sits in a
  folder named after its sender / RISE item / CCP photo, the "sender" the diversity term reads), and queued with
  the product's ``review build`` defaults (least confidence, mean over unsure fields, diversity λ = 0.5);
* the queue's first N (N = 100 / 200 / 400) are "reviewed": their hidden labels — the data set's own labels,
  the same records the training split holds — are added to the training split;
* the same number of random pool crops (``--random-seeds`` draws), and two ablations of the queue: without the
  diversity term (λ = 0), and ranked on the category field's margin alone (λ = 0.5);
* each time the heads are retrained with the corrections recipe (frozen backbone of the shipped weights, pooled
  features cached once, heads fine-tuned from the shipped heads for a fixed 12 epochs:
  ``fashionlens.train.feature_cache.fit_heads``) and scored on the **test** split: accuracy on the clothing data
  set's 10 common classes (the issue's "clothing classes"), category accuracy and macro-F1 over exact labels.

Run from the repository root (the first run computes the pooled features of the whole split, ~10 min on 2 cores)::

    nice -n 10 .venv/bin/python benchmarks/bench_active_learning.py --out runs/al-sim --plot docs/active_learning.png
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashionlens.evaluate.classification import classifier_metrics
from fashionlens.models.registry import default_weights_path
from fashionlens.review.fields import read_entries
from fashionlens.review.queue import build_queue
from fashionlens.review.ranking import RankItem, field_uncertainty, rank
from fashionlens.review.store import ReviewStore
from fashionlens.train.classifier import balance_weights, seed_everything
from fashionlens.train.config import load_config
from fashionlens.train.corrections import HeadRecipe, split_features
from fashionlens.train.feature_cache import fit_heads, head_probs
from fashionlens.train.samples import Sample


def make_pool(config: Any, pool: list[Sample], out: Path, weights: Path) -> Path:
    """The pool crops, linked into ``out/pool/<group>/``, tagged like a user's photos; returns the results file."""
    results = out / "pool.jsonl"
    if results.is_file() and sum(1 for _ in results.open()) == len(pool):
        return results
    root = out / "pool"
    for s in pool:
        folder = root / re.sub(r"[^A-Za-z0-9._-]+", "_", s.group)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(s.file).name
        if not target.exists():
            os.link(Path(config.cache_dir) / s.file, target)
    exe = Path(sys.executable).with_name("fashionlens")
    subprocess.run([str(exe), "tag", "--whole-image", "--embed", "--weights", str(weights), str(root),
                    "-o", str(results), "--threads", "2", "-q"], check=True)
    return results


def queue_order(results: Path, out: Path, pool: list[Sample], *, diversity: float) -> tuple[list[int], int]:
    """Pool indices in the review queue's order (``review build`` defaults but ``diversity``) and how many
    were queued (garments with a field needing review); the rest (all fields sure) follow in pool order."""
    db = out / f"pool-review-l{diversity:g}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    store = ReviewStore(db)
    build_queue(results, store, diversity=diversity)
    index = {Path(s.file).name: i for i, s in enumerate(pool)}
    order = [index[Path(t.photo).name] for t in store.tasks(statuses=("pending",))]
    queued = len(order)
    seen = set(order)
    order += [i for i in range(len(pool)) if i not in seen]
    return order, queued


def category_order(results: Path, pool: list[Sample], *, diversity: float = 0.5) -> list[int]:
    """Ablation: the queue's ranking (same MMR diversity) on the *category* field's margin alone, instead of the
    mean least-confidence over every unsure field."""
    entries = read_entries(results)
    index = {Path(s.file).name: i for i, s in enumerate(pool)}
    items = [RankItem(uncertainty=next((field_uncertainty(f, "margin") for f in e.fields if f.name == "category"),
                                       0.0),
                      group=e.group, kind_key=(e.object_type, e.category), embedding=e.embedding) for e in entries]
    return [index[Path(str(entries[i].photo)).name] for i in rank(items, diversity=diversity)]


def answer_queue(db: Path, pool: list[Sample], n: int, *, reviewer: str = "hidden-label") -> dict[str, int]:
    """Answer the first ``n`` pending tasks of the store ``db`` with the pool's hidden labels (an exact category,
    the attributes the data set gives) and accept them: the store ``train classifier --corrections`` reads."""
    store = ReviewStore(db, create=False)
    index = {Path(s.file).name: i for i, s in enumerate(pool)}
    done: Counter = Counter()
    for task in list(store.tasks(statuses=("pending",)))[:n]:
        sample = pool[index[Path(task.photo).name]]
        names = {f.name for f in task.fields}
        answers: dict[str, Any] = {}
        if len(sample.categories) == 1 and "category" in names:
            answers["category"] = sample.categories[0]
        for key, value in sample.attributes.items():
            if key in names:
                answers[key] = value
        for name, value in answers.items():
            try:
                store.answer(task.id, name, value, reviewer=reviewer)
                done["answers"] += 1
            except ValueError:
                done["refused"] += 1
        done[store.finish(task.id, "accept", reviewer=reviewer)] += 1
    return dict(done)


def retrain(base: Any, feats: dict[str, torch.Tensor], by_split: dict[str, list[Sample]], picks: list[int],
            config: Any, recipe: HeadRecipe, seed: int) -> dict[str, float]:
    """Heads fine-tuned on train + the picked pool samples, scored on test."""
    model = copy.deepcopy(base)
    train = list(by_split["train"]) + [by_split["val"][i] for i in picks]
    x = torch.cat([feats["train"], feats["val"][picks]]) if picks else feats["train"]
    weights = balance_weights(train)
    weights[len(by_split["train"]):] *= recipe.correction_weight
    fit_heads(model, x, train, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
              weight_decay=config.weight_decay, label_smoothing=config.label_smoothing,
              head_loss_weights=dict(config.head_loss_weights), sample_weights=weights, seed=seed)
    return score(model, feats["test"], by_split["test"])


def score(model: Any, test_feats: torch.Tensor, test: list[Sample]) -> dict[str, float]:
    m = classifier_metrics(head_probs(model, test_feats), test, model.meta.heads, thresholds=model.meta.thresholds)
    return {"clothing10_accuracy": m["clothing10"]["accuracy"], "category_accuracy": m["category"]["accuracy"],
            "category_macro_f1": m["category"]["macro_f1"], "object_type_accuracy": m["object_type"]["accuracy"]}


def summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs)}
    for k in runs[0]:
        values = [r[k] for r in runs]
        out[k] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def composition(picks: list[int], pool: list[Sample]) -> dict[str, int]:
    return dict(Counter(pool[i].source for i in picks))


def plot(table: dict[str, Any], ns: list[int], path: Path, baseline: dict[str, Any], shipped: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("clothing10_accuracy", "clothing data set, 10 classes: accuracy"),
               ("category_macro_f1", "category macro-F1 (exact labels)")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    arms = [("uncertainty", "queue order (λ = 0.5, product default)", "C3", "o"),
            ("uncertainty_no_diversity", "uncertainty only (λ = 0)", "C1", "s"),
            ("category_margin", "category margin only (λ = 0.5)", "C2", "D"),
            ("random", "random (mean ± sd of draws)", "C0", "^")]
    xs = [0] + ns
    for ax, (key, title) in zip(axes, metrics):
        for arm, label, colour, marker in arms:
            means = [baseline[key]["mean"]] + [table[arm][str(n)][key]["mean"] for n in ns]
            sds = [baseline[key]["sd"]] + [table[arm][str(n)][key]["sd"] for n in ns]
            ax.errorbar(xs, means, yerr=sds, label=label, color=colour, marker=marker, capsize=3)
        ax.axhline(shipped[key], color="grey", ls=":", label="shipped model (no retraining)")
        ax.set_xticks(xs)
        ax.set_xlabel("pool garments reviewed (N)")
        ax.set_title(title + " — test split", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test score")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Active-learning simulation: heads retrained on train + N reviewed validation garments", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/classifier_lite0_cpu.yaml")
    ap.add_argument("--weights", default=None, help="base classifier (default: the shipped one)")
    ap.add_argument("--out", default="runs/al-sim")
    ap.add_argument("--n", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--random-seeds", type=int, default=5)
    ap.add_argument("--train-seeds", type=int, default=3, help="training seeds of the (deterministic) queue picks")
    ap.add_argument("--plot", default="docs/active_learning.png")
    ap.add_argument("--store-only", type=int, metavar="N", help="only write OUT/review-N.sqlite: the queue with its "
                    "first N answered by the hidden labels (input for `train classifier --corrections`), and stop")
    args = ap.parse_args(argv)
    if args.store_only:
        config = load_config(args.config)
        from fashionlens.train.classifier import ensure_cache

        pool = [s for s in ensure_cache(config) if s.split == "val"]
        out = Path(args.out)
        weights = Path(args.weights) if args.weights else default_weights_path()
        results = make_pool(config, pool, out, weights)
        queue_order(results, out, pool, diversity=0.5)
        db = out / f"review-{args.store_only}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        Path(out / "pool-review-l0.5.sqlite").rename(db)
        print(json.dumps({"store": str(db), **answer_queue(db, pool, args.store_only)}))
        return 0
    t0 = time.perf_counter()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config)
    weights = Path(args.weights) if args.weights else default_weights_path()
    seed_everything(config.seed)
    base, by_split, feats = split_features(config, weights)
    t_features = time.perf_counter() - t0
    pool = by_split["val"]
    recipe = HeadRecipe()
    results = make_pool(config, pool, out, weights)
    orders = {}
    queued = {}
    for arm, lam in (("uncertainty", 0.5), ("uncertainty_no_diversity", 0.0)):
        orders[arm], queued[arm] = queue_order(results, out, pool, diversity=lam)
    orders["category_margin"] = category_order(results, pool)
    uncertainty_arms = ("uncertainty", "uncertainty_no_diversity", "category_margin")
    shipped = score(base, feats["test"], by_split["test"])
    baseline = summarise([retrain(base, feats, by_split, [], config, recipe, s) for s in range(args.train_seeds)])
    table: dict[str, Any] = {arm: {} for arm in (*uncertainty_arms, "random")}
    picks_info: dict[str, Any] = {}
    for n in args.n:
        for arm in uncertainty_arms:
            picks = orders[arm][:n]
            table[arm][str(n)] = summarise([retrain(base, feats, by_split, picks, config, recipe, s)
                                            for s in range(args.train_seeds)])
            picks_info.setdefault(arm, {})[str(n)] = composition(picks, pool)
        runs, comps = [], Counter()
        for s in range(args.random_seeds):
            picks = sorted(np.random.default_rng(1000 + s).choice(len(pool), size=n, replace=False).tolist())
            runs.append(retrain(base, feats, by_split, picks, config, recipe, s))
            comps.update(composition(picks, pool))
        table["random"][str(n)] = summarise(runs)
        picks_info.setdefault("random", {})[str(n)] = {k: v / args.random_seeds for k, v in comps.items()}
        print(f"N={n}: " + ", ".join(f"{arm} {table[arm][str(n)]['clothing10_accuracy']['mean']:.4f}"
                                     for arm in table), flush=True)
    report = {
        "config": args.config, "weights": weights.name, "pool": {"split": "val", "n": len(pool),
                                                                  "sources": dict(Counter(s.source for s in pool)),
                                                                  "queued": queued},
        "train": len(by_split["train"]), "test": len(by_split["test"]), "recipe": recipe.__dict__,
        "random_seeds": args.random_seeds, "train_seeds": args.train_seeds, "shipped": shipped,
        "baseline_n0": baseline, "table": table, "picks_by_source": picks_info,
        "seconds": {"features": round(t_features, 1), "total": round(time.perf_counter() - t0, 1)},
    }
    (out / "active_learning.json").write_text(json.dumps(report, indent=2), "utf-8")
    if args.plot:
        plot(table, args.n, Path(args.plot), baseline, shipped)
    print(json.dumps({k: report[k] for k in ("pool", "shipped", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
