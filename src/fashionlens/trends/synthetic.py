"""Generated data of known shape for tests and benchmarks: share series with planted spikes,
and tagged posts (``fashionlens/result/v1`` JSONL + post-metadata CSV)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def make_share_series(n_series: int, n_periods: int = 36, *, period: int = 12, n_posts: int = 400,
                      spike_sd: float = 6.0, spike_prob: float = 1.0, seed: int = 0
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shares = binomial(n_posts, base + trend + season) / n_posts, with at most one planted spike
    per series of ``spike_sd`` binomial standard deviations (up). Returns ``(matrix, truth)``:
    the period × series matrix and a table of planted spikes (series, period)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2013-01-01", periods=n_periods, freq="MS")
    t = np.arange(n_periods)
    cols, truth = {}, []
    for i in range(n_series):
        base = rng.uniform(0.1, 0.5)
        slope = rng.uniform(-0.004, 0.004)
        amp = rng.uniform(0.0, 0.08)
        phase = rng.uniform(0, 2 * np.pi)
        p = np.clip(base + slope * (t - n_periods / 2) + amp * np.sin(2 * np.pi * t / period + phase), 0.02, 0.9)
        key = f"attr=v{i}"
        if rng.random() < spike_prob:
            j = int(rng.integers(2, n_periods - 2))
            p[j] = min(0.98, p[j] + spike_sd * np.sqrt(p[j] * (1 - p[j]) / n_posts))
            truth.append({"series": key, "period": idx[j]})
        cols[key] = rng.binomial(n_posts, p) / n_posts
    return pd.DataFrame(cols, index=idx), pd.DataFrame(truth, columns=["series", "period"])


def make_shaped_series(specs: dict[str, tuple[float, float, float]], n_periods: int = 36, *, period: int = 12,
                       n_posts: int = 400, seed: int = 0) -> pd.DataFrame:
    """Share series of chosen shapes: ``specs`` maps a series key (``attribute=value``) to
    ``(base, slope per period, seasonal amplitude)``; each share is binomial(``n_posts``, base +
    slope · t + amplitude · sin(2πt / ``period``)) / ``n_posts`` (the probability clipped to
    [0.01, 0.99]). Returns the period × series matrix (monthly, from 2013-01)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2013-01-01", periods=n_periods, freq="MS")
    t = np.arange(n_periods)
    cols = {}
    for key, (base, slope, amp) in specs.items():
        p = np.clip(base + slope * t + amp * np.sin(2 * np.pi * t / period), 0.01, 0.99)
        cols[key] = rng.binomial(n_posts, p) / n_posts
    return pd.DataFrame(cols, index=idx)


_CITIES = ["paris", "london", "new-york", "tokyo", "milan", "berlin", "seoul", "sydney"]
_CATS = [("t-shirts", "upper-body"), ("shirts", "upper-body"), ("jeans", "lower-body"), ("dresses", "full-body"),
         ("coats-jackets", "upper-body"), ("skirts", "lower-body"), ("trainers", "footwear"), ("sweaters", "upper-body")]
_PATTERNS = ["plain", "striped", "floral", "checked", "graphic"]
_COLOURS = ["black", "white", "blue", "red", "beige", "green", "pink"]
_SLEEVES = ["sleeveless", "short", "long"]
_TAGS = ["ootd", "streetstyle", "fashion", "style", "outfit", "denim", "summer", "winter", "vintage", "look",
         "instafashion", "whatiwore", "minimal", "boho", "sale"]
_CAPTIONS = ["love this outfit", "so happy with my new jacket!", "terrible weather, hate this coat",
             "new in", "what do you think?", "worst purchase ever, so disappointed", "best day in the city",
             "feeling great today", "meh", "bored of my wardrobe", "perfect summer dress", "awful fit, sending it back"]


def write_tagged_posts(out_dir: str | Path, n_posts: int, *, months: int = 36, seed: int = 0,
                       chunk: int = 100_000) -> tuple[Path, Path]:
    """Write ``results.jsonl`` (one garment per post) and ``posts.csv`` for ``n_posts`` posts over
    ``months`` months in 8 cities, with seasonal sleeves and a rising ``striped`` pattern."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    res_path, meta_path = out / "results.jsonl", out / "posts.csv"
    start = pd.Timestamp("2013-01-01").value // 10 ** 9
    span = months * 30.4 * 86400
    with res_path.open("w") as fr, meta_path.open("w") as fm:
        fm.write("image,timestamp,city,lat,lon,author,likes,comments,hashtags,caption\n")
        for lo in range(0, n_posts, chunk):
            n = min(chunk, n_posts - lo)
            secs = start + rng.uniform(0, span, n)
            ts = pd.to_datetime(secs, unit="s")
            month = (ts.year - 2013) * 12 + ts.month - 1
            season = np.sin(2 * np.pi * (ts.month.to_numpy() - 4) / 12)
            city = rng.integers(0, len(_CITIES), n)
            cat = rng.integers(0, len(_CATS), n)
            p_striped = 0.1 + 0.2 * month / months
            pat = np.where(rng.random(n) < p_striped, 1, rng.choice([0, 2, 3, 4], n))
            sleeve = np.where(rng.random(n) < 0.5 + 0.35 * season, 1, rng.choice([0, 2], n))
            col = rng.integers(0, len(_COLOURS), (n, 2))
            authors = rng.zipf(1.6, n) % 5000
            likes = rng.poisson(20, n) * (1 + (authors < 20) * 10)
            comments = rng.poisson(2, n)
            ntag = rng.integers(1, 5, n)
            cap = rng.integers(0, len(_CAPTIONS), n)
            lines, rows = [], []
            for i in range(n):
                img = f"img/{lo + i:08d}.jpg"
                c, ot = _CATS[cat[i]]
                rec = {"schema": "fashionlens/result/v1", "image": {"path": img, "width": 640, "height": 640},
                       "model": {"name": "synthetic", "version": "1", "backend": "none"},
                       "garments": [{"object_type": ot, "score": 0.9, "bbox": [0, 0, 640, 640], "mask": None,
                                     "category": {"id": c, "score": 0.8},
                                     "attributes": {"pattern": {"id": _PATTERNS[pat[i]], "score": 0.7},
                                                    "colours": [{"id": _COLOURS[col[i, 0]], "share": 0.6, "score": 0.6},
                                                                {"id": _COLOURS[col[i, 1]], "share": 0.4, "score": 0.5}],
                                                    "sleeve": {"id": _SLEEVES[sleeve[i]], "score": 0.9}}}],
                       "error": None}
                lines.append(json.dumps(rec))
                tags = " ".join("#" + _TAGS[k] for k in rng.choice(len(_TAGS), ntag[i], replace=False))
                rows.append(f"{img},{ts[i].isoformat()}Z,{_CITIES[city[i]]},,,u{authors[i]},{likes[i]},"
                            f"{comments[i]},{tags},\"{_CAPTIONS[cap[i]]}\"")
            fr.write("\n".join(lines) + "\n")
            fm.write("\n".join(rows) + "\n")
    return res_path, meta_path
