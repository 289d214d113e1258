"""Social analytics from post metadata: activity peaks, top authors, hashtags, caption sentiment.

Sentiment is VADER's compound score (``vaderSentiment``, lexicon-based, offline); a caption is
negative when compound <= -0.05. Identical captions are scored once; above ``max_captions``
distinct captions a uniform random sample is scored (seeded) and the table says how many were.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fashionlens.trends.inputs import TrendData
from fashionlens.trends.series import Freq, period_start

log = logging.getLogger(__name__)


def _robust_z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    if not np.isfinite(mad) or mad == 0:
        mad = np.nanstd(x) or 1.0
    return (x - med) / mad


def activity(data: TrendData, freq: Freq = "month", *, z_threshold: float = 3.0) -> pd.DataFrame:
    """Posts, likes and comments per period with robust z-scores; ``peak`` marks posts or likes above threshold."""
    p = data.posts
    df = pd.DataFrame({"period": period_start(p["timestamp"], freq), "likes": p["likes"], "comments": p["comments"]})
    g = df.groupby("period").agg(posts=("likes", "size"), likes=("likes", lambda s: s.sum(min_count=1)),
                                 comments=("comments", lambda s: s.sum(min_count=1))).reset_index()
    g["posts_z"] = _robust_z(g["posts"].to_numpy())
    g["likes_z"] = _robust_z(g["likes"].to_numpy()) if g["likes"].notna().any() else np.nan
    g["peak"] = (g["posts_z"] > z_threshold) | (g["likes_z"].fillna(0) > z_threshold)
    return g


def top_authors(data: TrendData, n: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(by_activity, by_engagement)``: authors ranked by posts, and by likes + comments per post
    (authors with at least 3 posts)."""
    p = data.posts.dropna(subset=["author"])
    cols = ["author", "posts", "likes", "comments", "engagement_per_post"]
    if p.empty:
        empty = pd.DataFrame(columns=cols)
        return empty, empty
    g = p.groupby("author", observed=True).agg(posts=("post_id", "size"), likes=("likes", "sum"),
                                                comments=("comments", "sum")).reset_index()
    g["engagement_per_post"] = (g["likes"] + g["comments"]) / g["posts"]
    g["author"] = g["author"].astype(str)
    by_act = g.sort_values(["posts", "likes"], ascending=False).head(n)[cols].reset_index(drop=True)
    by_eng = g[g["posts"] >= 3].sort_values("engagement_per_post", ascending=False).head(n)[cols]
    return by_act, by_eng.reset_index(drop=True)


_TAG_SEPARATORS = str.maketrans({"#": " ", ",": " ", ";": " ", "|": " "})


def _hashtag_pairs(data: TrendData) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(post, tag code) once per post and tag, and the tag names; tags are lower-cased, and may be
    written ``#a #b``, ``a,b``, ``a;b`` or ``a|b``."""
    h = data.posts["hashtags"]
    h = h[h.notna()]
    post: list[int] = []
    tags: list[str] = []
    for i, txt in zip(h.index.tolist(), h.astype(str).tolist()):
        for tag in set(txt.lower().translate(_TAG_SEPARATORS).split()):
            post.append(i)
            tags.append(tag)
    codes, uniques = pd.factorize(np.asarray(tags, dtype=object))
    return np.asarray(post, dtype=np.int64), codes.astype(np.int64), [str(u) for u in uniques]


def hashtags(data: TrendData, *, top: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(frequency, cooccurrence)``: posts per hashtag, and post counts for pairs among the ``top`` tags."""
    from scipy import sparse

    post, codes, uniques = _hashtag_pairs(data)
    if not len(uniques):
        return pd.DataFrame(columns=["hashtag", "posts"]), pd.DataFrame(columns=["a", "b", "posts"])
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.argsort(-counts, kind="stable")
    freq = pd.DataFrame({"hashtag": np.asarray(uniques, dtype=object)[order], "posts": counts[order]})
    keep = freq["hashtag"].head(top).tolist()
    col = np.full(len(uniques), -1)
    col[order[:top]] = np.arange(len(keep))
    sel = col[codes] >= 0
    rows, cols = post[sel], col[codes][sel]
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(data.posts), len(keep)))
    C = (X.T @ X).toarray()
    i, j = np.triu_indices(len(keep), 1)
    co = pd.DataFrame({"a": np.asarray(keep)[i], "b": np.asarray(keep)[j], "posts": C[i, j].astype(int)})
    co = co[co["posts"] > 0].sort_values("posts", ascending=False, ignore_index=True)
    return freq, co


def caption_sentiment(data: TrendData, freq: Freq = "month", *, max_captions: int = 20_000, seed: int = 0,
                      z_threshold: float = 3.0, progress: bool = False) -> pd.DataFrame:
    """Per period: captions scored, mean compound, share negative, and ``negative_peak`` (robust z of
    the negative share above ``z_threshold``)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    p = data.posts.dropna(subset=["caption"])
    cols = ["period", "captions", "scored", "mean_compound", "negative_share", "negative_z", "negative_peak"]
    if p.empty:
        return pd.DataFrame(columns=cols)
    caps = p["caption"].astype(str)
    uniq = caps.unique()
    if len(uniq) > max_captions:
        rng = np.random.default_rng(seed)
        uniq = rng.choice(uniq, max_captions, replace=False)
        log.info("scoring a sample of %d of the distinct captions", max_captions)
    analyzer = SentimentIntensityAnalyzer()
    it = uniq
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(uniq, desc="sentiment", unit="caption")
    score = {c: analyzer.polarity_scores(c)["compound"] for c in it}
    comp = caps.map(score)
    df = pd.DataFrame({"period": period_start(p["timestamp"], freq), "compound": comp})
    g = df.groupby("period").agg(captions=("compound", "size"), scored=("compound", "count"),
                                 mean_compound=("compound", "mean"),
                                 negative_share=("compound", lambda s: (s.dropna() <= -0.05).mean())).reset_index()
    g["negative_z"] = _robust_z(g["negative_share"].to_numpy())
    g["negative_peak"] = g["negative_z"] > z_threshold
    return g[cols]
