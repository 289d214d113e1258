"""``fashionlens evaluate search``: how well garment embeddings and the text alignment retrieve.

On one split (``test`` by default) of the prepared sample cache, clothing + RISE:

* **text → image** (label-derived queries; gallery = every garment of the split). Three query
  families, each query written by :func:`fashionlens.search.captions.caption` and deduplicated by
  its text; a garment is *relevant* when its labels satisfy every fact the query states
  (:func:`fashionlens.search.captions.matches`):

  - ``category``: one query per distinct category label of the split — ``a photo of a sweater``;
    coarse labels get their own query (``a photo of shoes`` for clothing "Shoes", relevant: any
    garment whose allowed categories overlap);
  - ``category+colour``: one per (category label, single colour) pair present — ``a photo of a red
    sweater`` (only RISE has colour labels);
  - ``full``: one per distinct full label set of a garment — category + colours + pattern + material
    + sleeve + neckline + fit (a regular fit is not stated): ``a photo of a loose red striped wool
    sweater``.

  Recall@K = queries with a relevant garment in the top K; MRR = mean 1/rank of the first one.
* **zero-shot category** through text prompts (:func:`category_prompts`, averaged in the joint
  space) over all taxonomy categories, vs. a **linear probe** (scikit-learn logistic regression on the
  frozen 1280-d embeddings, fit on the train split, C chosen on val) vs. the **supervised** category
  head of the classifier — accuracy on the split's garments with exactly one category label.
* **image → image**: each garment queries all others of the split; relevant = same item class (the
  data set's own label: clothing ``label``, RISE ``type``); mAP, Recall@1/10, precision@10 — for the
  fine-tuned embedding, the aligned (projected) embedding and, as a baseline, ImageNet EfficientNet-Lite0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.evaluate.retrieval import relevance_in_rank_order, retrieval_summary
from fashionlens.paths import default_data_root, runs_path
from fashionlens.models.alignment import AlignmentHeads
from fashionlens.search.captions import GarmentFacts, caption, category_prompts, subset

log = logging.getLogger(__name__)

__all__ = ["evaluate_search", "image_retrieval_eval", "label_queries", "text_retrieval_eval", "zero_shot_eval"]

FAMILIES = ("category", "category+colour", "full")
_TEXT_CACHE: dict[str, np.ndarray] = {}


def encode_texts(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings of ``texts``, memoised per process (evaluation re-asks the same queries)."""
    todo = [t for t in dict.fromkeys(texts) if t not in _TEXT_CACHE]
    if todo:
        from fashionlens.search.text import load_text_encoder

        for t, e in zip(todo, load_text_encoder().encode(todo, batch_size=128)):
            _TEXT_CACHE[t] = e
    return np.stack([_TEXT_CACHE[t] for t in texts]) if len(texts) else np.zeros((0, 384), np.float32)


def _category_part(f: GarmentFacts) -> GarmentFacts:
    exact = len(f.categories) == 1
    return GarmentFacts(categories=f.categories, object_type=f.object_type,
                        source_label=None if exact else f.source_label)


def label_queries(facts: Sequence[GarmentFacts], family: str) -> tuple[list[str], list[GarmentFacts]]:
    """The distinct queries (text, stated facts) of one family (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}; got {family!r}")
    out: dict[str, GarmentFacts] = {}
    for f in facts:
        if family == "category":
            q = [_category_part(f)]
        elif family == "category+colour":
            base = _category_part(f)
            q = [GarmentFacts(categories=base.categories, object_type=base.object_type, source_label=base.source_label,
                              colours=(c,)) for c in f.colours]
        else:
            q = [subset(f, who=False)]
        for g in q:
            out.setdefault(caption(g), g)
    return list(out), list(out.values())


def _relevance(query_facts: Sequence[GarmentFacts], item_facts: Sequence[GarmentFacts]) -> np.ndarray:
    from fashionlens.train.alignment_data import FactCodes

    return FactCodes(query_facts).matches(FactCodes(item_facts))


def text_retrieval_eval(heads: AlignmentHeads, image_proj: np.ndarray, facts: Sequence[GarmentFacts], *,
                        families: Sequence[str] = FAMILIES) -> dict[str, dict[str, Any]]:
    """Recall@1/5/10, MRR, precision@10 per query family; ``image_proj`` = projected garments ``(n, D)``."""
    out: dict[str, dict[str, Any]] = {}
    for family in families:
        texts, qfacts = label_queries(facts, family)
        if not texts:
            out[family] = {"queries": 0}
            continue
        q = heads.project_text(encode_texts(texts))
        ranked = relevance_in_rank_order(q @ image_proj.T, _relevance(qfacts, facts))
        out[family] = retrieval_summary(ranked)
        out[family]["example_queries"] = texts[:3]
    return out


def zero_shot_scores(heads: AlignmentHeads, image_proj: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """``(n, len(categories))`` cosine of each garment with each category's averaged prompt embedding."""
    protos = []
    for c in categories:
        p = heads.project_text(encode_texts(category_prompts(c))).mean(axis=0)
        protos.append(p / np.linalg.norm(p))
    return image_proj @ np.stack(protos).T


def zero_shot_eval(heads: AlignmentHeads, image_proj: np.ndarray, facts: Sequence[GarmentFacts],
                   categories: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy of text-prompt classification over ``categories`` (default: all taxonomy categories)
    on the garments with exactly one category label."""
    if categories is None:
        from fashionlens.taxonomy import load_taxonomy

        categories = list(load_taxonomy().categories)
    idx = [i for i, f in enumerate(facts) if len(f.categories) == 1]
    if not idx:
        return {"accuracy": float("nan"), "n": 0}
    pred = zero_shot_scores(heads, image_proj[idx], categories).argmax(1)
    truth = np.array([list(categories).index(facts[i].categories[0]) for i in idx])
    return {"accuracy": float((pred == truth).mean()), "n": len(idx)}


def image_retrieval_eval(embeddings: np.ndarray, classes: Sequence[str | None]) -> dict[str, Any]:
    """Each garment with a class queries all the others; relevant = same class."""
    keep = [i for i, c in enumerate(classes) if c]
    x = embeddings[keep]
    cls = np.array([classes[i] for i in keep])
    scores = x @ x.T
    ranked = relevance_in_rank_order(scores, cls[:, None] == cls[None, :], exclude=np.eye(len(keep), dtype=bool))
    return retrieval_summary(ranked, map_=True)


def _linear_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                  test_x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, float] = (-1.0, 1.0)
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(train_x, train_y)
        acc = float((clf.predict(val_x) == val_y).mean()) if len(val_y) else 0.0
        if acc > best[0]:
            best = (acc, c)
    clf = LogisticRegression(C=best[1], max_iter=2000, random_state=seed).fit(train_x, train_y)
    return clf.predict(test_x), {"C": best[1], "val_accuracy": best[0]}


def imagenet_embeddings(cache_dir: str | Path, samples, *, cache: str | Path | None = None,
                        backbone: str = "efficientnet_lite0", batch_size: int = 32, progress: bool = True
                        ) -> np.ndarray:
    """Baseline: pooled features of the packaged ImageNet backbone (not fine-tuned), L2-normalised."""
    import hashlib

    key = hashlib.sha1(json.dumps([backbone, [s.file for s in samples],
                                   str(Path(cache_dir).resolve())]).encode()).hexdigest()[:16]
    path = Path(cache) / f"imagenet-{key}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from fashionlens.models.backbones import backbone_spec, create_backbone

    spec = backbone_spec(backbone)
    model = create_backbone(backbone, pretrained=True).eval()
    mean = np.asarray(spec.mean, np.float32) * 255
    std = np.asarray(spec.std, np.float32) * 255
    parts = []
    with torch.inference_mode(), tqdm(total=len(samples), desc="imagenet embeddings", disable=not progress) as bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            arr = []
            for s in chunk:
                with Image.open(Path(cache_dir) / s.file) as im:
                    rgb = np.asarray(im.convert("RGB").resize((spec.input_size, spec.input_size), Image.BILINEAR))
                arr.append(((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1))
            f = model(torch.from_numpy(np.stack(arr)))
            parts.append(torch.nn.functional.normalize(f, dim=-1).numpy())
            bar.update(len(chunk))
    emb = np.concatenate(parts) if parts else np.zeros((0, spec.num_features), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb)
    return emb


def evaluate_search(*, alignment: str | Path | None = None, classifier: str | Path | None = None,
                    cache_dir: str | Path = runs_path("cache", "classifier-224-s0"), data_root: str | Path = default_data_root(),
                    sources: Sequence[str] = ("clothing", "rise"), split: str = "test",
                    embedding_cache: str | Path | None = runs_path("cache", "alignment"), out_dir: str | Path = runs_path("eval-search"),
                    imagenet_baseline: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run every measurement above on ``split``; write ``out_dir/search_metrics.json``; return it."""
    from fashionlens.models.alignment import load_alignment
    from fashionlens.train.alignment_data import (
        AlignmentTrainConfig,
        alignment_samples,
        facts_for_samples,
        sample_embeddings,
    )

    config = AlignmentTrainConfig(cache_dir=str(cache_dir), data_root=str(data_root), sources=tuple(sources))
    samples = alignment_samples(config, progress=progress)
    by_split = {name: [s for s in samples if s.split == name] for name in ("train", "val", "test")}
    if split not in by_split or not by_split[split]:
        raise ValueError(f"no {split!r} samples of {list(sources)} in {cache_dir}")
    test = by_split[split]
    facts = facts_for_samples(test, data_root)
    heads = load_alignment(alignment)

    def emb(name: str, flip: bool = False) -> dict[str, np.ndarray]:
        return sample_embeddings(cache_dir, by_split[name], classifier=classifier, flip=flip, cache=embedding_cache,
                                 progress=progress)

    e_test = emb(split)
    x = e_test["embedding"]
    proj = heads.project_image(x)
    result: dict[str, Any] = {"split": split, "sources": list(sources), "garments": len(test),
                              "alignment": {"name": heads.meta.name, "version": heads.meta.version,
                                            "dim": heads.meta.dim, "temperature": heads.meta.temperature},
                              "classifier": heads.meta.classifier}
    result["text_to_image"] = text_retrieval_eval(heads, proj, facts)

    # category: zero-shot vs linear probe vs supervised head, same garments, same label space
    from fashionlens.taxonomy import load_taxonomy

    cats = list(load_taxonomy().categories)
    exact = [i for i, f in enumerate(facts) if len(f.categories) == 1]
    truth = np.array([cats.index(facts[i].categories[0]) for i in exact])
    zs_pred = zero_shot_scores(heads, proj[exact], cats).argmax(1)
    sup_pred = e_test["category"][exact].argmax(1)
    category: dict[str, Any] = {"n": len(exact), "zero_shot": float((zs_pred == truth).mean()),
                                "supervised": float((sup_pred == truth).mean())}
    if by_split["train"] and by_split["val"] and split != "train":
        e_train, e_val = emb("train", flip=True), emb("val")
        tr_f = facts_for_samples(by_split["train"])
        va_f = facts_for_samples(by_split["val"])
        tr = [i for i, f in enumerate(tr_f) if len(f.categories) == 1]
        va = [i for i, f in enumerate(va_f) if len(f.categories) == 1]
        y_tr = np.array([cats.index(tr_f[i].categories[0]) for i in tr])
        y_va = np.array([cats.index(va_f[i].categories[0]) for i in va])
        probe_pred, probe_info = _linear_probe(e_train["embedding"][tr], y_tr, e_val["embedding"][va], y_va, x[exact])
        category["linear_probe"] = float((probe_pred == truth).mean())
        category["linear_probe_fit"] = probe_info | {"train_n": len(tr)}
    category["zero_shot_over_supervised"] = category["zero_shot"] / max(category["supervised"], 1e-9)
    result["category"] = category

    classes = [f"{s.source}:{s.source_label}" if s.source_label else None for s in test]
    i2i = {"finetuned_1280": image_retrieval_eval(x, classes),
           f"aligned_{heads.meta.dim}": image_retrieval_eval(proj, classes)}
    if imagenet_baseline:
        i2i["imagenet_lite0_1280"] = image_retrieval_eval(
            imagenet_embeddings(cache_dir, test, cache=embedding_cache, progress=progress), classes)
    result["image_to_image"] = i2i
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_metrics.json").write_text(json.dumps(result, indent=2), "utf-8")
    result["outputs"] = [str(out / "search_metrics.json")]
    return result
