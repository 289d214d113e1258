"""Scale check of :class:`fashionlens.search.GarmentIndex` on synthetic clustered vectors (issue 5).

Builds an index of ``--n`` vectors of dimension ``--dim`` (default 1,000,000 × 1280, the
EfficientNet-Lite0 feature size) through the library's own ``GarmentIndex.build`` (FAISS index +
SQLite metadata + fsynced files), then measures, on ``--queries`` held-out query vectors:

* build time (train + add + metadata + writing the files), load time, size on disk;
* peak RSS of the process (``ru_maxrss``; includes the generated data, ``4·n·dim`` bytes);
* latency of single-query ``search(q, k)`` calls (p50/p99, after a warm-up), which includes the
  SQLite metadata lookup of the hits, for each ``nprobe`` (ivf) or ``ef_search`` (hnsw) in the sweep;
* recall@k of those hits against exact search (brute force in numpy over the same vectors);
* the same for a filtered query (``category`` = one of 20 values, ~5 % of the collection);
* for ``ivf``, each ``--ivf-storage`` (float16, float32, fastscan) in turn on the same data and
  queries, so the storages are compared side by side in one run (one index in memory at a time).

The data is a two-level mixture of Gaussians on the unit sphere (default spread 4.0, whose
neighbour contrast is close to that of real garment index vectors): ``--families`` family centres,
``--clusters`` cluster centres scattered around them, points scattered around the clusters
(``--spread`` = noise norm relative to the centre), with Zipf-like cluster sizes. Queries are fresh
draws from the same mixture, so approximate search is meaningful (neighbours are mostly in the
query's cluster and its siblings, not all of them).

Prints one JSON line on stdout (progress goes to stderr). Usage (from the project root)::

    .venv/bin/python benchmarks/bench_index.py                      # 1M × 1280, kind auto (→ ivf)
    .venv/bin/python benchmarks/bench_index.py --n 50000 --nprobe 4,8,16,32
    .venv/bin/python benchmarks/bench_index.py --n 200000 --kind hnsw --ef-search 32,64,128
    .venv/bin/python benchmarks/bench_index.py --dim 1536 --ivf-storage fastscan,float16   # issue 5 target
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from fashionlens.search import GarmentIndex, default_nlist, default_nprobe

CATEGORIES = 20
COLOURS = ("black", "white", "grey", "navy", "blue", "red", "green", "beige", "brown", "pink")


def log(message: str) -> None:
    print(f"[bench_index] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Mixture:
    """A two-level Gaussian mixture on the unit sphere; draws are float32, L2-normalised."""

    def __init__(self, dim: int, *, families: int, clusters: int, spread: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        fam = _normalise(rng.standard_normal((families, dim), dtype=np.float32))
        member_of = rng.integers(0, families, clusters)
        noise = rng.standard_normal((clusters, dim), dtype=np.float32) * (0.8 / np.sqrt(dim))
        self.centres = _normalise(fam[member_of] + noise)
        weights = 1.0 / np.sqrt(np.arange(1, clusters + 1))
        self.weights = rng.permutation(weights / weights.sum())
        self.dim, self.spread = dim, spread

    def draw(self, n: int, rng: np.random.Generator, out: np.ndarray | None = None,
             chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
        """``(n, dim)`` vectors (written into ``out`` when given) and their ``(n,)`` cluster ids."""
        out = np.empty((n, self.dim), dtype=np.float32) if out is None else out
        labels = rng.choice(len(self.centres), size=n, p=self.weights)
        scale = np.float32(self.spread / np.sqrt(self.dim))
        for start in range(0, n, chunk):
            lab = labels[start:start + chunk]
            block = rng.standard_normal((len(lab), self.dim), dtype=np.float32)
            block *= scale
            block += self.centres[lab]
            out[start:start + len(lab)] = _normalise(block)
        return out, labels


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None,
               chunk: int = 100_000) -> np.ndarray:
    """Exact top-``k`` ids by inner product (brute force in chunks); ``mask`` limits the candidates."""
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    for start in range(0, len(x), chunk):
        s = q @ x[start:start + chunk].T
        if mask is not None:
            s[:, ~mask[start:start + chunk]] = -np.inf
        ids = np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)
        all_s, all_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, ids], 1)
        top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return best_i


def measure(index: GarmentIndex, q: np.ndarray, truth: np.ndarray, k: int, *, warmup: int,
            **search_kwargs: Any) -> dict[str, float]:
    """p50/p99 latency (ms) of single-query searches and recall@k against ``truth``."""
    for i in range(min(warmup, len(q))):
        index.search(q[i:i + 1], k, **search_kwargs)
    times, hits = [], []
    for i in range(len(q)):
        t0 = time.perf_counter()
        res = index.search(q[i:i + 1], k, **search_kwargs)
        times.append((time.perf_counter() - t0) * 1000)
        hits.append([h.id for h in res[0]])
    recall = np.mean([len(set(h) & set(t.tolist())) / k for h, t in zip(hits, truth)])
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3),
            "mean_ms": round(float(np.mean(times)), 3), f"recall@{k}": round(float(recall), 4)}


def build_and_measure(args: argparse.Namespace, x: np.ndarray, metadata: list[dict[str, Any]], q: np.ndarray,
                      truth: np.ndarray, ftruth: np.ndarray, fmask: np.ndarray, target: int,
                      storage: str) -> dict[str, Any]:
    """Build one index (``storage`` for ivf), reload it, and measure the sweep, defaults and a filter."""
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="bench_index-"))
    try:
        t0 = time.perf_counter()
        index = GarmentIndex.build(x, metadata, workdir, kind=args.kind, nlist=args.nlist, hnsw_m=args.hnsw_m,
                                   ef_construction=args.ef_construction, info={"source": "bench_index.py"},
                                   ivf_storage=storage)
        build_s = time.perf_counter() - t0
        log(f"built {index!r} ({storage}) in {build_s:.1f}s")
        index.close()
        del index
        t0 = time.perf_counter()
        index = GarmentIndex.load(workdir)
        load_s = time.perf_counter() - t0
        disk_mb = sum(p.stat().st_size for p in workdir.iterdir()) / 2**20

        sweep: list[dict[str, Any]] = []
        if index.kind == "ivf":
            nlist = index.params["nlist"]
            values = ([int(v) for v in args.nprobe.split(",")] if args.nprobe else
                      sorted({max(1, nlist // 64), max(1, nlist // 32), index.params["nprobe"], max(1, nlist // 8),
                              max(1, nlist // 4)}))
            for p in values:
                sweep.append({"nprobe": p, **measure(index, q, truth, args.k, warmup=args.warmup, nprobe=p)})
                log(f"{storage} nprobe={p}: {sweep[-1]}")
        elif index.kind == "hnsw":
            for ef in (int(v) for v in args.ef_search.split(",")):
                sweep.append({"ef_search": ef, **measure(index, q, truth, args.k, warmup=args.warmup, ef_search=ef)})
                log(f"ef_search={ef}: {sweep[-1]}")
        default = measure(index, q, truth, args.k, warmup=args.warmup)
        log(f"{storage} default parameters: {default}")
        filtered = measure(index, q, ftruth, args.k, warmup=args.warmup, filters={"category": f"cat{target:02d}"})
        log(f"{storage} filtered (category, {fmask.mean():.1%} of the vectors): {filtered}")
        run = {"kind": index.kind, "params": index.params, "build_s": round(build_s, 2), "load_s": round(load_s, 2),
               "disk_mb": round(disk_mb, 1), "peak_rss_mb_so_far": round(peak_rss_mb(), 1),
               "search": default, "sweep": sweep,
               "filtered": {"filter": {"category": f"cat{target:02d}"}, "fraction": round(float(fmask.mean()), 4),
                            **filtered}}
        index.close()
        return run
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    ap.add_argument("--dim", type=int, default=1280, help="vector dimension (EfficientNet-Lite0: 1280)")
    ap.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, default=None, help="ivf cells (default: default_nlist(n))")
    ap.add_argument("--nprobe", default=None,
                    help="comma-separated ivf nprobe sweep (default: nlist/64, nlist/32, stored default, nlist/8)")
    ap.add_argument("--ivf-storage", default="fastscan,float16",
                    help="comma-separated ivf storages to build and measure in turn (fastscan, float16, float32)")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", default="32,64,128", help="comma-separated hnsw ef_search sweep")
    ap.add_argument("--families", type=int, default=50)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=4.0,
                    help="point noise norm relative to the cluster centre (4.0: neighbour contrast close to real "
                         "garment index vectors; 2.0 is much easier — experiments/README.md)")
    ap.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: all cores)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="index directory to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.dim < 1 or args.queries < 1 or args.k < 1:
        ap.error("--n, --dim, --queries and --k must be >= 1")
    storages = [v.strip() for v in args.ivf_storage.split(",") if v.strip()]
    if not storages or any(v not in ("fastscan", "float16", "float32") for v in storages):
        ap.error(f"--ivf-storage: expected fastscan, float16 and/or float32; got {args.ivf_storage!r}")
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    mix = Mixture(args.dim, families=args.families, clusters=args.clusters, spread=args.spread, seed=args.seed)
    t0 = time.perf_counter()
    x, labels = mix.draw(args.n, rng)
    q, _ = mix.draw(args.queries, rng)
    category = labels % CATEGORIES
    metadata = [{"path": f"synthetic/{i:07d}.jpg", "category": f"cat{c:02d}", "object_type": "upper",
                 "attributes": {"colours": [COLOURS[c % len(COLOURS)]]}} for i, c in enumerate(category.tolist())]
    generate_s = time.perf_counter() - t0
    rss_data = peak_rss_mb()
    log(f"generated {args.n} x {args.dim} vectors + metadata in {generate_s:.1f}s (peak RSS {rss_data:.0f} MB)")

    t0 = time.perf_counter()
    truth = exact_topk(x, q, args.k)
    target = 3
    fmask = category == target
    ftruth = exact_topk(x, q, args.k, mask=fmask)
    truth_s = time.perf_counter() - t0
    log(f"exact top-{args.k} for {args.queries} queries (plain and filtered) in {truth_s:.1f}s")

    runs = []
    for storage in storages:
        runs.append(build_and_measure(args, x, metadata, q, truth, ftruth, fmask, target, storage))
        if runs[-1]["kind"] != "ivf":
            break  # the storage only matters for ivf
    del metadata
    result = {
        "bench": "index", "n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k,
        "data": {"families": args.families, "clusters": args.clusters, "spread": args.spread, "seed": args.seed},
        "generate_s": round(generate_s, 2), "exact_truth_s": round(truth_s, 2),
        "rss_after_data_mb": round(rss_data, 1), "peak_rss_mb": round(peak_rss_mb(), 1), "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__,
                    "numpy": np.__version__},
        "defaults": {"nlist": default_nlist(args.n), "nprobe": default_nprobe(default_nlist(args.n))},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
