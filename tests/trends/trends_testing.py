"""Helpers shared by the trends tests (a uniquely named module, not ``conftest``)."""

import numpy as np
import pandas as pd

from fashionlens.trends.inputs import TrendData, ValidationReport


def make_data(posts: list[dict], labels: list[tuple[int, str, str]]) -> TrendData:
    cols = ("post_id", "timestamp", "place", "lat", "lon", "author", "likes", "comments", "hashtags", "caption")
    df = pd.DataFrame([{c: p.get(c, np.nan if c in ("lat", "lon", "likes", "comments") else None) for c in cols}
                       for p in posts])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    for c in ("lat", "lon", "likes", "comments"):
        df[c] = df[c].astype(float)
    df["place"] = df["place"].astype("category")
    df["author"] = df["author"].astype("category")
    df["post_id"] = df["post_id"].astype(str)
    lab = pd.DataFrame(labels, columns=["post", "attribute", "value"]).astype(
        {"post": "int64", "attribute": "category", "value": "category"})
    return TrendData(df, lab, ValidationReport(len(df), len(df)))
