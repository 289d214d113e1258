import numpy as np
import pandas as pd
import pytest

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


@pytest.fixture
def small_data() -> TrendData:
    posts = [{"post_id": str(i), "timestamp": ts, "place": place}
             for i, (ts, place) in enumerate([("2024-01-03", "paris"), ("2024-01-20", "paris"),
                                              ("2024-01-25", "london"), ("2024-02-02", "london")])]
    labels = [(0, "colours", "red"), (0, "colours", "blue"), (1, "colours", "red"), (2, "colours", "blue"),
              (3, "colours", "blue"), (0, "category", "jeans")]
    return make_data(posts, labels)
