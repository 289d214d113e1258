"""Data tests on the real StreetStyle-27k labels (skipped when ../shared/datasets is absent)."""

from pathlib import Path

import pytest

from fashionlens.trends.forecast import holdout_evaluation, summarise_holdout
from fashionlens.trends.inputs import load_inputs
from fashionlens.trends.series import attribute_shares, eligible_series

ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "streetstyle"
FILES = sorted(ROOT.glob("*.csv")) if ROOT.is_dir() else []
pytestmark = [pytest.mark.data, pytest.mark.skipif(not FILES, reason="StreetStyle CSVs not present")]


@pytest.fixture(scope="module")
def data():
    return load_inputs(FILES)


def test_streetstyle_reads_both_files(data):
    rep = data.report
    assert rep.rows_read == 5416 and rep.rows_used + rep.rows_rejected == rep.rows_read
    assert rep.rows_rejected <= 5  # a handful of swapped coordinates, each reported
    assert data.posts["place"].nunique() == 36
    assert data.posts["timestamp"].min().year == 2013 and data.posts["timestamp"].max().year == 2015


def test_streetstyle_forecast_target(data):
    """Issue 6: monthly global series with >= 24 months of >= 50 labelled posts, last 6 months held out.

    ETS is left out here to keep the test fast; benchmarks/bench_trends.py runs every model.
    """
    shares = attribute_shares(data, "month")
    m = eligible_series(shares, "month", min_periods=24, min_support=50)
    assert m.shape[1] >= 40 and len(m) == 30
    models = ["mean", "last", "linear", "ar", "exp_smoothing", "seasonal_naive", "cyclic", "cyclic_linear"]
    t = summarise_holdout(holdout_evaluation(m, holdout=6, models=models))
    assert t.loc["selected_pooled", "vs_mean"] >= 0.2
    assert t.loc["selected_pooled", "vs_last"] >= 0.2
