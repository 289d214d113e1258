"""Attribute shares per period and place, with Wilson intervals, and post volume per period.

The share of value ``v`` of attribute ``a`` in a period is ``k / n``: ``n`` posts in that period
(and place) have ``a`` labelled, ``k`` of them carry ``v`` (multi-label attributes such as
``colours`` can carry several values, so their shares need not sum to 1). A value absent from a
period where ``a`` is labelled has share 0. Periods with ``n < min_support`` are kept in the
table but flagged ``supported = False`` and become gaps (NaN) in :func:`share_matrix`.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd

from fashionlens.trends.inputs import TrendData

log = logging.getLogger(__name__)

Freq = Literal["day", "week", "month"]
_PANDAS_FREQ = {"day": "D", "week": "W-MON", "month": "M"}
_OFFSET = {"day": "D", "week": "W-MON", "month": "MS"}
GLOBAL = "all"


def period_start(ts: pd.Series, freq: Freq) -> pd.Series:
    """The start of each timestamp's period (weeks start on Monday)."""
    if freq not in _PANDAS_FREQ:
        raise ValueError(f"unknown period {freq!r}; expected one of {list(_PANDAS_FREQ)}")
    if freq == "day":
        return ts.dt.floor("D")
    if freq == "week":
        d = ts.dt.floor("D")
        return d - pd.to_timedelta(d.dt.day_of_week, unit="D")
    return ts.dt.to_period("M").dt.start_time


def period_index(start: pd.Timestamp, end: pd.Timestamp, freq: Freq) -> pd.DatetimeIndex:
    """Every period start from ``start`` to ``end`` inclusive."""
    return pd.date_range(start, end, freq=_OFFSET[freq])


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k/n`` (NaN where ``n == 0``)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def attribute_shares(data: TrendData, freq: Freq = "month", *, by_place: bool = False, min_support: int = 30,
                     attributes: list[str] | None = None) -> pd.DataFrame:
    """Share of every attribute value per period, globally (``place == 'all'``) and optionally per place.

    Returns columns ``attribute, value, place, period, n, k, share, ci_low, ci_high, supported``.
    """
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1; got {min_support}")
    posts, labels = data.posts, data.labels
    if attributes is not None:
        unknown = sorted(set(attributes) - set(data.attributes))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; expected some of {data.attributes}")
        labels = labels[labels["attribute"].isin(attributes)]
    cols = ["attribute", "value", "place", "period", "n", "k", "share", "ci_low", "ci_high", "supported"]
    if labels.empty:
        return pd.DataFrame(columns=cols)
    per = period_start(posts["timestamp"], freq)
    per_code, periods = pd.factorize(per, sort=True)
    T = max(len(periods), 1)
    post = labels["post"].to_numpy().astype(np.int64)
    pair_code, pairs = _pair_codes(labels)
    K = len(pairs)
    pair_attr, attrs = pd.factorize(pd.Index([a for a, _ in pairs]), sort=True)
    A = len(attrs)
    order = np.argsort(pair_attr, kind="stable")
    nvals = np.bincount(pair_attr, minlength=A)
    attr_start = np.cumsum(nvals) - nvals
    lab_attr = pair_attr[pair_code]
    # distinct (post, attribute): the denominators count posts, not labels (colours are multi-label)
    pa = _sorted_unique(post * A + lab_attr)
    d_post, d_attr_all = pa // A, pa % A
    place_names = [GLOBAL]
    passes = [np.zeros(len(posts), dtype=np.int64)]
    if by_place:
        pc, pnames = pd.factorize(posts["place"].astype(object), sort=True)
        passes.append(pc.astype(np.int64))  # -1: no place
        place_names += [str(p) for p in pnames]
    pair_names = np.asarray([a for a, _ in pairs], dtype=object), np.asarray([v for _, v in pairs], dtype=object)
    frames = []
    for place_of_post in passes:
        P = int(place_of_post.max()) + 1 if len(place_of_post) else 1
        lp = place_of_post[post]
        ok = lp >= 0
        num = np.bincount(((lp[ok] * K + pair_code[ok]) * T + per_code[post[ok]]), minlength=P * K * T)
        dp = place_of_post[d_post]
        okd = dp >= 0
        den = np.bincount(((dp[okd] * A + d_attr_all[okd]) * T + per_code[d_post[okd]]), minlength=P * A * T)
        dk = np.flatnonzero(den)
        n_cnt = den[dk]
        d_per, rest = dk % T, dk // T
        d_attr, d_place = rest % A, rest // A
        rep = nvals[d_attr]
        row = np.repeat(np.arange(len(dk)), rep)
        within = np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep)
        g_pair = order[attr_start[d_attr][row] + within]
        k = num[(d_place[row] * K + g_pair) * T + d_per[row]]
        frames.append(pd.DataFrame({
            "attribute": pair_names[0][g_pair], "value": pair_names[1][g_pair],
            "place": np.asarray(place_names, dtype=object)[d_place[row] + (1 if len(frames) else 0)],
            "period": periods[d_per[row]], "n": n_cnt[row].astype(np.int64), "k": k.astype(np.int64)}))
    out = pd.concat(frames, ignore_index=True)
    out["attribute"] = out["attribute"].astype(str)
    out["value"] = out["value"].astype(str)
    out["share"] = out["k"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["k"].to_numpy(), out["n"].to_numpy())
    out["supported"] = out["n"] >= min_support
    return out[cols].sort_values(["place", "attribute", "value", "period"], ignore_index=True)


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy's hash-based unique is several times slower on millions of ints)."""
    x = np.sort(x, kind="stable")
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy().astype(np.int64), [str(c) for c in col.cat.categories]
    codes, names = pd.factorize(col.astype(str), sort=True)
    return codes.astype(np.int64), [str(c) for c in names]


def _pair_codes(labels: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Integer code per label row for its (attribute, value) pair, and the pairs (sorted)."""
    a_codes, a_names = _codes(labels["attribute"])
    v_codes, v_names = _codes(labels["value"])
    nv = max(len(v_names), 1)
    joint, uniq = pd.factorize(a_codes * nv + v_codes, sort=True)
    pairs = [(a_names[u // nv], v_names[u % nv]) for u in uniq]
    return joint.astype(np.int64), pairs


def post_volume(data: TrendData, freq: Freq = "month", *, by_place: bool = False) -> pd.DataFrame:
    """Posts, likes and comments per period (``place == 'all'``, and per place if asked)."""
    posts = data.posts
    df = pd.DataFrame({"period": period_start(posts["timestamp"], freq), "likes": posts["likes"],
                       "comments": posts["comments"], "place": posts["place"].astype("object")})
    def total(col: pd.Series) -> float:
        return col.sum(min_count=1)  # NaN, not 0, when no post has the column

    agg = {"posts": ("likes", "size"), "likes": ("likes", total), "comments": ("comments", total)}
    g = df.groupby("period").agg(**agg).reset_index().assign(place=GLOBAL)
    parts = [g]
    if by_place:
        p = df.dropna(subset=["place"]).groupby(["place", "period"]).agg(**agg).reset_index()
        parts.append(p)
    out = pd.concat(parts, ignore_index=True)
    return out[["place", "period", "posts", "likes", "comments"]]


def series_key(attribute: str, value: str) -> str:
    return f"{attribute}={value}"


def share_matrix(shares: pd.DataFrame, freq: Freq = "month", *, place: str = GLOBAL,
                 min_support: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide tables (period × ``attribute=value``) of shares and of ``n`` over the full period range.

    Shares where ``n`` is below ``min_support`` (default: the table's ``supported`` flag) are NaN.
    """
    s = shares[shares["place"] == place]
    if s.empty:
        return pd.DataFrame(), pd.DataFrame()
    key = s["attribute"] + "=" + s["value"]
    ok = s["supported"] if min_support is None else s["n"] >= min_support
    idx = period_index(s["period"].min(), s["period"].max(), freq)
    share = pd.DataFrame({"key": key, "period": s["period"], "v": s["share"].where(ok)}).pivot(
        index="period", columns="key", values="v").reindex(idx)
    n = pd.DataFrame({"key": key, "period": s["period"], "v": s["n"]}).pivot(
        index="period", columns="key", values="v").reindex(idx).fillna(0)
    share.index.name = n.index.name = "period"
    return share, n


def eligible_series(shares: pd.DataFrame, freq: Freq = "month", *, place: str = GLOBAL, min_periods: int = 24,
                    min_support: int = 50) -> pd.DataFrame:
    """The share matrix restricted to series with at least ``min_periods`` periods of ``n >= min_support``.

    Gaps (periods below support) are NaN; the range is trimmed to the first..last supported period
    of all kept series.
    """
    share, n = share_matrix(shares, freq, place=place, min_support=min_support)
    if share.empty:
        return share
    keep = [c for c in share.columns if int((n[c] >= min_support).sum()) >= min_periods]
    out = share[keep]
    valid = out.notna().any(axis=1)
    if not valid.any():
        return out.iloc[0:0]
    first, last = valid.idxmax(), valid[::-1].idxmax()
    return out.loc[first:last]
