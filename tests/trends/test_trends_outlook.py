"""The forecast-change ranking (trends/outlook.py): hand-made forecasts, then generated series of known shape."""

import numpy as np
import pandas as pd
import pytest

from fashionlens.trends.outlook import (
    RANKING_COLUMNS,
    binary_attributes,
    forecast_outlook,
    outlook_matrix,
    rank_forecast_changes,
    without_binary_negatives,
)
from fashionlens.trends.series import wilson_interval
from fashionlens.trends.synthetic import make_shaped_series

IDX = pd.date_range("2020-01-01", periods=12, freq="MS")
FUTURE = pd.date_range("2021-01-01", periods=2, freq="MS")


def _hand_made(series: dict[str, tuple[float, float, float, float, float]], baseline: str = "last"):
    """``series``: key → (last share, forecast at the horizon, interval width, model MAE, baseline MAE)."""
    matrix = pd.DataFrame({k: np.r_[np.full(11, 0.3), last] for k, (last, *_) in series.items()}, index=IDX)
    scores, fcs = [], []
    for k, (last, f, width, mae, base_mae) in series.items():
        scores += [{"series": k, "model": "cyclic", "mae": mae, "mape": np.nan, "selected": True},
                   {"series": k, "model": baseline, "mae": base_mae, "mape": np.nan, "selected": False}]
        for step, p in enumerate(FUTURE, 1):
            fcs.append({"series": k, "period": p, "step": step, "model": "cyclic", "forecast": f,
                        "lo": f - width / 2, "hi": f + width / 2})
    return matrix, pd.DataFrame(scores), pd.DataFrame(fcs)


@pytest.mark.parametrize("name, series, order, ranks", [
    ("bigger change first", {"a=x": (0.2, 0.3, 0.1, 0.01, 0.02), "a=y": (0.2, 0.5, 0.1, 0.01, 0.02)},
     ["a=y", "a=x"], [1, 2]),
    ("narrow interval beats a bigger but unsure change",
     {"a=x": (0.2, 0.4, 0.4, 0.01, 0.02), "a=y": (0.2, 0.3, 0.05, 0.01, 0.02)}, ["a=y", "a=x"], [1, 2]),
    ("a fall ranks by its size", {"a=x": (0.5, 0.2, 0.1, 0.01, 0.02), "a=y": (0.2, 0.3, 0.1, 0.01, 0.02)},
     ["a=x", "a=y"], [1, 2]),
    ("not beating the naive forecast ranks last, rank 0",
     {"a=x": (0.2, 0.9, 0.1, 0.03, 0.02), "a=y": (0.2, 0.25, 0.1, 0.01, 0.02)}, ["a=y", "a=x"], [1, 0]),
    ("a tie with the naive forecast does not beat it", {"a=x": (0.2, 0.9, 0.1, 0.02, 0.02)}, ["a=x"], [0]),
    ("binary attribute: only yes", {"hat=Yes": (0.2, 0.3, 0.1, 0.01, 0.02), "hat=No": (0.8, 0.6, 0.1, 0.01, 0.02)},
     ["hat=Yes"], [1]),
    ("equal confidence: by name", {"b=x": (0.2, 0.3, 0.1, 0.01, 0.02), "a=x": (0.2, 0.3, 0.1, 0.01, 0.02)},
     ["a=x", "b=x"], [1, 2]),
])
def test_rank_forecast_changes_hand_made(name, series, order, ranks):
    r = rank_forecast_changes(*_hand_made(series))
    assert list(r.columns) == list(RANKING_COLUMNS)
    assert r["series"].tolist() == order, name
    assert r["rank"].tolist() == ranks, name
    for _, row in r.iterrows():
        last, f, width, mae, base = series[row["series"]]
        assert row["change"] == pytest.approx(f - last)
        assert row["confidence"] == pytest.approx(abs(f - last) / width)
        assert row["beats_baseline"] == (mae < base) and row["skill"] == pytest.approx(1 - mae / base)
        assert row["horizon_period"] == FUTURE[-1] and row["last_period"] == IDX[-1]


def test_rank_forecast_changes_edge_cases():
    m, s, f = _hand_made({"a=x": (0.2, 0.2, 0.0, 0.01, 0.02)})
    assert rank_forecast_changes(m, s, f)["confidence"].iloc[0] == 0  # no change, zero width: 0, not NaN
    no_baseline = rank_forecast_changes(m, s[s["model"] != "last"], f)
    assert not no_baseline["beats_baseline"].any() and no_baseline["rank"].tolist() == [0]
    empty = rank_forecast_changes(m, s, pd.DataFrame())
    assert empty.empty and list(empty.columns) == list(RANKING_COLUMNS)
    both = rank_forecast_changes(*_hand_made({"hat=yes": (0.2, 0.3, 0.1, 0.01, 0.02),
                                              "hat=no": (0.8, 0.7, 0.1, 0.01, 0.02)}), binary_yes_only=False)
    assert set(both["series"]) == {"hat=yes", "hat=no"}


@pytest.mark.parametrize("keys, binary, kept", [
    (["hat=Yes", "hat=No", "colour=red"], {"hat"}, ["hat=Yes", "colour=red"]),
    (["tie=no"], {"tie"}, []),
    (["layers=One layer", "layers=Multiple layers"], set(), ["layers=One layer", "layers=Multiple layers"]),
    (["answer=yes", "answer=no", "answer=maybe"], set(), ["answer=yes", "answer=no", "answer=maybe"]),
])
def test_binary_attributes(keys, binary, kept):
    assert binary_attributes(keys) == binary
    assert without_binary_negatives(keys) == kept


def _shares(matrix: pd.DataFrame, n_posts: int = 400) -> pd.DataFrame:
    """``attribute_shares``' table (global place) for a generated share matrix of ``n_posts`` posts a period."""
    rows = []
    for key in matrix.columns:
        attribute, value = key.split("=", 1)
        k = np.rint(matrix[key].to_numpy() * n_posts)
        lo, hi = wilson_interval(k, np.full(len(k), n_posts))
        rows.append(pd.DataFrame({"attribute": attribute, "value": value, "place": "all", "period": matrix.index,
                                  "n": n_posts, "k": k.astype(int), "share": k / n_posts, "ci_low": lo,
                                  "ci_high": hi, "supported": True}))
    return pd.concat(rows, ignore_index=True)


FLAT = {"colour=blue": (0.30, 0.0, 0.0), "colour=black": (0.45, 0.0, 0.0)}


@pytest.mark.parametrize("name, specs, top, direction", [
    ("a rising trend", {"pattern=striped": (0.10, 0.01, 0.0), **FLAT}, "pattern=striped", 1),
    ("a falling trend", {"pattern=plain": (0.60, -0.008, 0.0), **FLAT}, "pattern=plain", -1),
    # 36 months: the last observed month is a season's trough, the horizon half-way up the next crest
    ("a season about to turn", {"sleeve=short": (0.40, 0.0, 0.20), **FLAT}, "sleeve=short", 1),
    ("binary: the yes share, not its mirror",
     {"hat=yes": (0.10, 0.01, 0.0), "hat=no": (0.90, -0.01, 0.0), **FLAT}, "hat=yes", 1),
])
def test_forecast_outlook_on_generated_series(name, specs, top, direction):
    matrix = make_shaped_series(specs, 36, seed=7)
    ranking, forecasts = forecast_outlook(_shares(matrix), "month", horizon=6)
    assert ranking["series"].iloc[0] == top, (name, ranking[["series", "confidence", "beats_baseline"]])
    best = ranking.iloc[0]
    assert best["rank"] == 1 and best["beats_baseline"] and np.sign(best["change"]) == direction
    assert best["confidence"] > 0.4  # a change of about the interval's half-width or more
    for key in FLAT:  # flat series: no confident change
        assert ranking.set_index("series").loc[key, "confidence"] < 0.8 * best["confidence"]
    assert "hat=no" not in set(ranking["series"]) and set(forecasts["series"]) == set(ranking["series"])
    assert (forecasts.groupby("series")["step"].max() == 6).all()


def test_outlook_matrix_filters_and_caps():
    matrix = make_shaped_series({"a=x": (0.2, 0, 0), "a=y": (0.5, 0, 0), "hat=yes": (0.3, 0, 0),
                                 "hat=no": (0.7, 0, 0)}, 24)
    shares = _shares(matrix)
    assert list(outlook_matrix(shares, "month").columns) == ["a=x", "a=y", "hat=yes"]
    assert list(outlook_matrix(shares, "month", attribute="a", max_series=1).columns) == ["a=x"]
    assert outlook_matrix(shares, "month", min_points=25).shape[1] == 0
    ranking, forecasts = forecast_outlook(_shares(matrix.iloc[:6]), "month")  # too short to forecast
    assert ranking.empty and forecasts.empty
