"""How hard is nearest-neighbour search on real garment index vectors, compared with the synthetic
mixtures of ``benchmarks/bench_index.py``? (experiments/README.md, search: the 1M scale check.)

Embeds ``--n`` clothing + RISE photos (whole-image, shipped classifier), maps them to index vectors
with the shipped alignment heads, and prints, for them and for as many draws of each synthetic
mixture, the median z-score (over all similarities of a query) of the 1st, 10th and 100th
neighbour's similarity and the 10th-to-100th gap. Lower z and smaller gaps = harder for IVF.

    .venv/bin/python experiments/scripts/index_contrast.py --n 3000
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the project root (this file is experiments/scripts/...)
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_index import Mixture

from fashionlens.result import decode_embedding
from fashionlens.pipeline import Tagger
from fashionlens.models.alignment import load_alignment
from fashionlens.search.catalogue import EmbeddingSpace
from fashionlens.jobs.local import tag_paths


def contrast(x: np.ndarray, queries: int = 200) -> dict[str, float]:
    q, rest = x[:queries], x[queries:]
    s = q @ rest.T
    top = -np.sort(-s, axis=1)
    mu, sd = s.mean(1), s.std(1)
    z = {k: (top[:, k - 1] - mu) / sd for k in (1, 10, 100)}
    return {"z1": float(np.median(z[1])), "z10": float(np.median(z[10])), "z100": float(np.median(z[100])),
            "gap10_100": float(np.median(z[10] - z[100]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=ROOT / ".." / "shared" / "datasets")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    photos = sorted((args.data_root / "clothing" / "images").glob("*.jpg"))
    photos += sorted((args.data_root / "rise" / "images").rglob("*.jpg"))
    if len(photos) < 300:
        raise SystemExit(f"index_contrast: expected clothing and RISE photos under {args.data_root}")
    random.Random(args.seed).shuffle(photos)
    tagger = Tagger(threads=1, embed=True)
    records = tag_paths(tagger, photos[: args.n], batch_size=32, progress=True)
    emb = np.stack([decode_embedding(g["embedding"]) for r in records if r["error"] is None for g in r["garments"]])
    heads = load_alignment()
    real = EmbeddingSpace(emb.shape[1], heads).index_vectors(emb)
    rows = [("real index vectors", contrast(real))]
    rng = np.random.default_rng(args.seed)
    for spread in (2.0, 4.0):
        x, _ = Mixture(real.shape[1], families=50, clusters=1000, spread=spread, seed=args.seed).draw(len(real), rng)
        rows.append((f"synthetic, spread {spread}", contrast(x)))
    print("| vectors | z(1st) | z(10th) | z(100th) | gap 10th-100th |\n|---|---|---|---|---|")
    for name, c in rows:
        print(f"| {name} | {c['z1']:.2f} | {c['z10']:.2f} | {c['z100']:.2f} | {c['gap10_100']:.2f} |")


if __name__ == "__main__":
    main()
