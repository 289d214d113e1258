"""Data preparation shared by alignment training and ``fashionlens evaluate search``.

* :class:`AlignmentTrainConfig`: everything that defines one alignment training run (evaluation
  builds one to read the same samples).
* :func:`alignment_samples`: the configured sources from the classifier's prepared sample cache.
* :func:`facts_for_samples` and :class:`FactCodes`: each sample's :class:`GarmentFacts`, and the
  facts as integer arrays for vectorised "does garment j satisfy caption i" checks.
* :func:`sample_embeddings`: garment embeddings of prepared samples from the frozen classifier, cached.

Used by :mod:`fashionlens.train.alignment` (training) and :mod:`fashionlens.evaluate.search_report`
(evaluation); imports nothing from :mod:`fashionlens.evaluate`, so evaluation can use it without an
import cycle.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.atomic import atomic_write
from fashionlens.paths import default_data_root, runs_path
from fashionlens.search.captions import GarmentFacts
from fashionlens.train.config import ConfigError
from fashionlens.train.samples import Sample, read_samples

log = logging.getLogger(__name__)

__all__ = ["AlignmentTrainConfig", "FactCodes", "alignment_samples", "facts_for_samples", "sample_embeddings"]


@dataclass
class AlignmentTrainConfig:
    """Everything that defines one alignment training run (see ``configs/alignment.yaml``)."""

    data_root: str = field(default_factory=default_data_root)
    sources: tuple[str, ...] = ("clothing", "rise")
    cache_dir: str = field(default_factory=lambda: runs_path("cache", "classifier-224-s0"))  # the classifier's prepared samples (built if missing)
    prepare_sources: tuple[str, ...] = ("clothing", "rise", "ccp")  # what a missing cache is built from
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    classifier: str | None = None  # classifier weights (default: the shipped model)
    embedding_cache: str = field(default_factory=lambda: runs_path("cache", "alignment"))
    flip_views: bool = True  # also embed each training image mirrored
    out_dir: str = field(default_factory=lambda: runs_path("alignment-lite0"))
    dim: int = 256
    hidden: int = 0  # 0: linear heads; else two-layer heads of this hidden width
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    init_temperature: float = 0.07
    learn_temperature: bool = True
    captions_per_sample: int = 12
    caption_keep: float = 0.6
    label_aware: bool = True
    patience: int = 10
    threads: int | None = None
    limit: int | None = None  # cap samples per split (smoke tests)
    model_name: str = "garment-text-align-lite0"
    model_version: str = "1"
    ship_to: str | None = None  # also write the best heads here (e.g. src/fashionlens/weights/...npz)

    def __post_init__(self) -> None:
        for name in ("sources", "prepare_sources"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"{name}: expected a list such as [clothing, rise]; got {value!r}")
            setattr(self, name, tuple(value))
        unknown = set(self.sources) - {"clothing", "rise", "ccp"}
        if unknown:
            raise ConfigError(f"sources: unknown {sorted(unknown)}; expected clothing, rise, ccp")
        self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        for name in ("dim", "epochs", "batch_size", "captions_per_sample", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1; got {getattr(self, name)!r}")
        if self.hidden < 0:
            raise ConfigError(f"hidden: expected 0 (linear heads) or a width >= 1; got {self.hidden}")
        if not 0.0 < self.caption_keep <= 1.0:
            raise ConfigError(f"caption_keep: expected a probability in (0, 1]; got {self.caption_keep}")
        if not 0.0 < self.init_temperature < 1.0:
            raise ConfigError(f"init_temperature: expected a number in (0, 1); got {self.init_temperature}")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (written to ``out_dir/config.json``)."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------ samples and facts


def alignment_samples(config: AlignmentTrainConfig, *, progress: bool = True) -> list[Sample]:
    """The config's sources from the prepared cache (prepared first when missing, as the classifier
    trainer does, from ``prepare_sources`` so the cache stays the classifier's)."""
    cache = Path(config.cache_dir)
    if not (cache / "samples.jsonl").is_file():
        from tqdm.auto import tqdm

        from fashionlens.io.datasets import read_dataset
        from fashionlens.train.samples import prepare_samples

        records = []
        for src in config.prepare_sources:
            records += read_dataset(src, config.data_root)
        with tqdm(total=len(records), desc="prepare samples", disable=not progress) as bar:
            prepare_samples(records, cache, seed=config.seed, fractions=config.split_fractions,
                            progress=bar.update)
    meta = json.loads((cache / "cache.json").read_text("utf-8"))
    if meta["seed"] != config.seed or list(meta["fractions"]) != list(config.split_fractions):
        raise ValueError(f"{cache} was prepared with seed {meta['seed']} and fractions {meta['fractions']}; the config "
                         f"asks for {config.seed} and {list(config.split_fractions)}; use another cache_dir")
    samples = [s for s in read_samples(cache) if s.source in config.sources]
    if config.limit:
        by_split: dict[str, list[Sample]] = {}
        for s in samples:
            by_split.setdefault(s.split, []).append(s)
        samples = [s for split in by_split.values() for s in split[: config.limit]]
    return samples


def _source_extras(data_root: str | Path) -> dict[str, dict[str, Any]]:
    """Facts the sample cache does not keep, by photo stem: RISE ``gender``, clothing ``kids``."""
    root = Path(data_root)
    extras: dict[str, dict[str, Any]] = {}
    rise = root / "rise" / "garments.jsonl"
    if rise.is_file():
        with rise.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    extras[str(row.get("id"))] = {"gender": row.get("gender")}
    clothing = root / "clothing" / "labels.csv"
    if clothing.is_file():
        with clothing.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                extras[row["image"]] = {"kids": str(row.get("kids", "")).strip().lower() == "true"}
    return extras


def facts_for_samples(samples: Sequence[Sample], data_root: str | Path | None = None) -> list[GarmentFacts]:
    """:class:`GarmentFacts` of each sample (with RISE gender / clothing kids when ``data_root`` has them)."""
    extras = _source_extras(data_root) if data_root is not None else {}
    out = []
    for s in samples:
        e = extras.get(Path(s.origin).stem, {}) if s.origin else {}
        out.append(GarmentFacts.from_labels(categories=s.categories, object_type=s.object_type,
                                            attributes=s.attributes, source_label=s.source_label,
                                            gender=e.get("gender"), kids=bool(e.get("kids", False))))
    return out


class FactCodes:
    """Facts as integer arrays, so "does garment j satisfy caption i" is one vectorised comparison."""

    _SINGLE = ("pattern", "material", "sleeve", "neckline", "fit", "gender", "source_label", "object_type")

    def __init__(self, facts: Sequence[GarmentFacts]) -> None:
        from fashionlens.taxonomy import load_taxonomy

        tax = load_taxonomy()
        cats = {c: i for i, c in enumerate(tax.categories)}
        colours = {c: i for i, c in enumerate(tax.attribute("colours").values)}
        self.n = len(facts)
        self.cat = np.array([sum(1 << cats[c] for c in f.categories if c in cats) for f in facts], dtype=np.int64)
        self.col = np.array([sum(1 << colours[c] for c in f.colours if c in colours) for f in facts], dtype=np.int64)
        self.kids = np.array([f.kids for f in facts], dtype=bool)
        self.single: dict[str, np.ndarray] = {}
        for name in self._SINGLE:  # -1 = not stated; values hashed to stable ints
            self.single[name] = np.array([_code(getattr(f, name)) for f in facts], dtype=np.int64)

    def select(self, idx: np.ndarray) -> FactCodes:
        """The codes of the garments at ``idx`` (same order)."""
        out = object.__new__(FactCodes)
        out.n = len(idx)
        out.cat, out.col, out.kids = self.cat[idx], self.col[idx], self.kids[idx]
        out.single = {k: v[idx] for k, v in self.single.items()}
        return out

    def matches(self, items: FactCodes) -> np.ndarray:
        """``(n_queries, n_items)`` bool: item satisfies every fact of the query (see
        :func:`fashionlens.search.captions.matches`)."""
        q, it = self, items
        ok = np.where(q.cat[:, None] != 0, (q.cat[:, None] & it.cat[None, :]) != 0, True)
        no_cat = q.cat[:, None] == 0
        for name in ("source_label", "object_type"):
            qv, iv = q.single[name][:, None], it.single[name][None, :]
            ok &= ~no_cat | (qv < 0) | (qv == iv)
        ok &= (q.col[:, None] & ~it.col[None, :]) == 0
        for name in ("pattern", "material", "sleeve", "neckline", "fit", "gender"):
            qv, iv = q.single[name][:, None], it.single[name][None, :]
            ok &= (qv < 0) | (qv == iv)
        ok &= ~q.kids[:, None] | it.kids[None, :]
        return ok


def _code(value: Any) -> int:
    if value is None:
        return -1
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=6).digest(), "big")


# ------------------------------------------------------------------------------------ embeddings


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def sample_embeddings(cache_dir: str | Path, samples: Sequence[Sample], *, classifier: str | Path | None = None,
                      flip: bool = False, cache: str | Path | None = None, batch_size: int = 32,
                      threads: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Garment embeddings of prepared samples from the frozen classifier (its ONNX export when there is one).

    Returns ``embedding`` ``(n, D)`` float32 (unit rows), ``category`` ``(n, K)`` category-head
    probabilities and, with ``flip``, ``embedding_flip`` of the mirrored images. With ``cache`` (a
    folder) results are stored there under a key of the weights' content and the sample files, and
    reused.
    """
    from fashionlens.models.registry import default_weights_path
    from fashionlens.runtime.backends import create_backend

    weights = Path(classifier) if classifier else default_weights_path()
    backend = create_backend(weights, threads=threads)
    key_src = json.dumps([_file_digest(weights), [s.file for s in samples], bool(flip), str(Path(cache_dir).resolve())])
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    path = Path(cache) / f"embeddings-{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            log.info("image embeddings from %s", path)
            return {k: z[k].astype(np.float32) for k in z.files}
    from PIL import Image
    from tqdm.auto import tqdm

    from fashionlens.pipeline import preprocess

    views = ("embedding", "embedding_flip") if flip else ("embedding",)
    out: dict[str, list[np.ndarray]] = {v: [] for v in views} | {"category": []}
    cache_dir = Path(cache_dir)
    with tqdm(total=len(samples), desc="embed images", unit="img", disable=not progress) as bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            rgbs = []
            for s in chunk:
                with Image.open(cache_dir / s.file) as im:
                    rgbs.append(np.asarray(im.convert("RGB")))
            batch = np.stack([preprocess(rgb, backend.meta) for rgb in rgbs])
            res = backend.run(batch, embed=True)
            out["embedding"].append(res["embedding"])
            out["category"].append(res["category"])
            if flip:
                out["embedding_flip"].append(backend.run(np.ascontiguousarray(batch[..., ::-1]),
                                                                embed=True)["embedding"])
            bar.update(len(chunk))
    d = next(iter(out["embedding"])).shape[1] if out["embedding"] else 0
    arrays = {k: np.concatenate(v) if v else np.zeros((0, d), np.float32) for k, v in out.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a file object: np.savez would add ".npz" to a name
                np.savez(fh, **arrays)

        atomic_write(path, write, fsync=False)
    return arrays
