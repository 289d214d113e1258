import numpy as np
import pandas as pd
import pytest

from fashionlens.trends.forecast import (
    fill_gaps,
    forecast_all,
    holdout_evaluation,
    predict,
    rolling_backtest,
    summarise_holdout,
)

T = np.arange(36)
TREND_SEASON = 0.3 + 0.004 * T + 0.06 * np.sin(2 * np.pi * T / 12)


@pytest.mark.parametrize("model, y, tol", [
    ("mean", np.full(24, 0.4), 1e-12),
    ("last", np.r_[np.full(23, 0.1), 0.5], 1e-12),
    ("linear", 0.1 + 0.01 * T[:24], 1e-9),
    ("seasonal_naive", TREND_SEASON[:24] - 0.004 * T[:24], 1e-9),
    ("cyclic", 0.3 + 0.06 * np.sin(2 * np.pi * T[:24] / 12), 1e-9),
    ("cyclic_linear", TREND_SEASON[:24], 1e-9),
    ("ar", 0.3 + 0.1 * 0.5 ** T[:24], 1e-3),
    ("ets", TREND_SEASON[:30], 0.03),  # damped trend: falls behind a straight line a little
])
def test_models_recover_their_shape(model, y, tol):
    n = len(y)
    truth = {"mean": np.full(6, 0.4), "last": np.full(6, 0.5), "linear": 0.1 + 0.01 * np.arange(24, 30),
             "seasonal_naive": (TREND_SEASON - 0.004 * T)[n:n + 6], "cyclic": 0.3 + 0.06 * np.sin(2 * np.pi * T[n:n + 6] / 12),
             "cyclic_linear": TREND_SEASON[n:n + 6], "ar": 0.3 + 0.1 * 0.5 ** T[n:n + 6], "ets": TREND_SEASON[n:n + 6]}
    f = predict(model, y, 6, 12)
    assert f.shape == (6,)
    assert np.max(np.abs(f - truth[model])) < tol


def test_fill_gaps_and_errors():
    assert fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])).tolist() == [1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="no values"):
        fill_gaps(np.array([np.nan, np.nan]))
    with pytest.raises(ValueError, match="unknown model"):
        predict("prophet", np.ones(5), 2, 12)


def test_backtest_scores_and_selection_on_trend_plus_season():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2013-01-01", periods=36, freq="MS")
    m = pd.DataFrame({f"s{i}": TREND_SEASON + rng.normal(0, 0.005, 36) for i in range(3)}, index=idx)
    bt = rolling_backtest(m["s0"].to_numpy(), "cyclic_linear", h=6, period=12, n_origins=4)
    assert bt.errors.shape == (4, 6) and bt.mae < 0.02 and bt.mape < 0.1
    models = ["mean", "last", "linear", "cyclic", "cyclic_linear"]
    for selection in ("pooled", "series"):
        scores, fc = forecast_all(m, h=6, models=models, selection=selection)
        chosen = set(scores.loc[scores["selected"], "model"])
        assert chosen == {"cyclic_linear"}
    assert len(fc) == 18 and (fc["lo"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["hi"]).all()
    assert fc["period"].iloc[0] == pd.Timestamp("2016-01-01")
    truth = 0.3 + 0.004 * np.arange(36, 42) + 0.06 * np.sin(2 * np.pi * np.arange(36, 42) / 12)
    f0 = fc[fc["series"] == "s0"]
    assert np.mean((f0["lo"].to_numpy() <= truth + 0.01) & (truth - 0.01 <= f0["hi"].to_numpy())) == 1


def test_holdout_evaluation_beats_baselines_on_seasonal_data():
    rng = np.random.default_rng(1)
    idx = pd.date_range("2013-01-01", periods=30, freq="MS")
    m = pd.DataFrame({f"s{i}": 0.3 + 0.08 * np.sin(2 * np.pi * (np.arange(30) + i) / 12) + rng.normal(0, 0.01, 30)
                      for i in range(4)}, index=idx)
    ev = holdout_evaluation(m, holdout=6, models=["mean", "last", "cyclic", "seasonal_naive"])
    t = summarise_holdout(ev)
    assert t.loc["selected_pooled", "vs_mean"] > 0.2 and t.loc["selected_pooled", "vs_last"] > 0.2
    assert set(t.index) == {"mean", "last", "cyclic", "seasonal_naive", "selected_pooled", "selected_per_series"}
