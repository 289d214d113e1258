"""Data preparation shared by grader training and evaluation: view embeddings and label encoding.

* :func:`embed_items`: front/back embeddings of items from the frozen garment classifier (its ONNX
  export when there is one), cached by the weights' and the photos' content.
* :func:`build_vocabularies`: per-head vocabularies from the training items.
* :func:`encode_targets`: class indices per head for a list of items.

Used by :mod:`fashionlens.train.grader` (training) and :mod:`fashionlens.evaluate.grading`
(``evaluate grader``); imports nothing from :mod:`fashionlens.evaluate`, so evaluation can use it
without an import cycle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.atomic import atomic_write
from fashionlens.io.rise_release import HEAD_KINDS, ItemRecord
from fashionlens.models.grader import GraderHeadSpec, classifier_info

log = logging.getLogger(__name__)

__all__ = ["build_vocabularies", "classifier_backend", "embed_items", "encode_targets"]


# ------------------------------------------------------------------------------------------ embeddings


@lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _file_key(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def embed_items(items: Sequence[ItemRecord], *, classifier: str | Path | None = None, backend: str = "auto",
                cache: str | Path | None = None, threads: int | None = 1, batch_size: int = 32,
                progress: bool = False, expect: Mapping[str, str] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Front and back embeddings of ``items`` from the frozen classifier backbone.

    Returns ``({role: (n, D) float32}, {role: (n,) bool present})`` for ``front`` and ``back``; a view
    that is absent or cannot be decoded is not present (decode failures are logged). With ``cache``
    (a folder) the arrays are stored under a key of the weights' and photos' content and reused.
    ``expect`` (``{"name", "version"}`` of a classifier, e.g. from grader weights) makes a different
    classifier an error: embeddings of another backbone mean nothing to trained heads.
    """
    from fashionlens.imageio import load_image
    from fashionlens.models.meta import EMBEDDING_OUTPUT
    from fashionlens.models.registry import default_weights_path
    from fashionlens.pipeline import preprocess

    weights = Path(classifier) if classifier else default_weights_path()
    model = classifier_backend(str(weights), backend, threads)
    info = classifier_info(model.meta)
    if expect and (expect.get("name"), expect.get("version")) != (info["name"], info["version"]):
        raise ValueError(f"the grading heads were trained on embeddings of classifier {expect.get('name')} "
                         f"v{expect.get('version')}, but {weights} is {info['name']} v{info['version']}")
    roles = ("front", "back")
    st = weights.stat()
    key_src = json.dumps([_digest(str(weights), st.st_mtime_ns, st.st_size), model.name,
                          [[_file_key(it.views[r]) if r in it.views else None for r in roles] for it in items]])
    path = Path(cache) / f"views-{hashlib.sha1(key_src.encode()).hexdigest()[:16]}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            log.info("view embeddings from %s", path)
            return ({r: z[r].astype(np.float32) for r in roles}, {r: z[f"{r}_present"].astype(bool) for r in roles})
    jobs = [(i, r) for i, it in enumerate(items) for r in roles if r in it.views]
    dim: int | None = None
    found: dict[tuple[int, str], np.ndarray] = {}
    started = time.perf_counter()
    for start in range(0, len(jobs), batch_size):
        chunk, batch = [], []
        for i, r in jobs[start:start + batch_size]:
            try:
                rgb = load_image(items[i].views[r]).rgb
            except (ValueError, OSError) as exc:
                log.warning("item %s: %s photo %s could not be decoded (%s); used as missing",
                            items[i].item_id, r, items[i].views[r], exc)
                continue
            chunk.append((i, r))
            batch.append(preprocess(rgb, model.meta))
        if batch:
            emb = model.run(np.stack(batch), embed=True)[EMBEDDING_OUTPUT]
            dim = emb.shape[1]
            found.update(zip(chunk, emb))
        if progress:
            log.info("embedded %d/%d photos", min(start + batch_size, len(jobs)), len(jobs))
    log.info("embedded %d photos in %.1f s", len(found), time.perf_counter() - started)
    dim = dim or 1280
    emb_out = {r: np.zeros((len(items), dim), np.float32) for r in roles}
    present = {r: np.zeros(len(items), bool) for r in roles}
    for (i, r), e in found.items():
        emb_out[r][i] = e
        present[r][i] = True
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a file object: np.savez would add ".npz" to a name
                np.savez(fh, **emb_out, **{f"{r}_present": present[r] for r in roles})

        atomic_write(path, write, fsync=False)
    return emb_out, present


@lru_cache(maxsize=2)
def classifier_backend(weights: str, backend: str, threads: int | None) -> Any:
    """One classifier backend per (weights, backend, threads) in this process."""
    from fashionlens.runtime.backends import create_backend

    return create_backend(weights, backend=backend, threads=threads)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ labels


def build_vocabularies(items: Sequence[ItemRecord], heads: Sequence[str], *, min_labels: int, min_class_count: int
                       ) -> tuple[dict[str, list[Any]], dict[str, str], dict[str, dict[str, int]]]:
    """Per-head vocabularies from training items: ``(vocabularies, untrained reasons, value counts)``.

    Nominal vocabularies are ordered by frequency (ties by name), ordinal ones by grade.
    """
    vocab: dict[str, list[Any]] = {}
    untrained: dict[str, str] = {}
    counts_out: dict[str, dict[str, int]] = {}
    for head in heads:
        counts = Counter(it.labels.get(head) for it in items if it.labels.get(head) is not None)
        counts_out[head] = {str(k): v for k, v in counts.most_common()}
        kept = {v: n for v, n in counts.items() if n >= min_class_count}
        n_kept = sum(kept.values())
        if not counts:
            untrained[head] = "no training item has this label"
        elif len(kept) < 2:
            untrained[head] = (f"fewer than 2 values with >= {min_class_count} training items "
                               f"(counts: {dict(counts.most_common(5))})")
        elif n_kept < min_labels:
            untrained[head] = f"only {n_kept} labelled training items (min_labels = {min_labels})"
        else:
            if HEAD_KINDS[head] == "ordinal":
                vocab[head] = sorted(kept)
            else:
                vocab[head] = sorted(kept, key=lambda v: (-kept[v], str(v)))
            dropped = {str(v): n for v, n in counts.items() if v not in kept}
            if dropped:
                log.info("head %s: rare values left out of the vocabulary: %s", head, dropped)
    return vocab, untrained, counts_out


def encode_targets(items: Sequence[ItemRecord], heads: Sequence[GraderHeadSpec]
                   ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Class indices per head (-1 = no label, or a value outside the head's vocabulary) and how many
    labels fell outside the vocabulary per head."""
    targets: dict[str, np.ndarray] = {}
    unknown: dict[str, int] = {}
    for spec in heads:
        index = {v: i for i, v in enumerate(spec.values)}
        y = np.full(len(items), -1, dtype=np.int64)
        for i, it in enumerate(items):
            v = it.labels.get(spec.name)
            if v is None:
                continue
            if v in index:
                y[i] = index[v]
            else:
                unknown[spec.name] = unknown.get(spec.name, 0) + 1
        targets[spec.name] = y
    return targets, unknown
