import numpy as np
import pandas as pd
import pytest

from fashionlens.trends.series import (
    attribute_shares,
    eligible_series,
    post_volume,
    share_matrix,
    wilson_interval,
)


@pytest.mark.parametrize("k, n, lo, hi", [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
                                          (50, 1000, 0.0381, 0.0653)])
def test_wilson_interval_known_values(k, n, lo, hi):
    a, b = wilson_interval(np.array([k]), np.array([n]))
    assert a[0] == pytest.approx(lo, abs=1e-3) and b[0] == pytest.approx(hi, abs=1e-3)


def test_shares_zero_fill_multilabel_and_places(small_data):
    s = attribute_shares(small_data, "month", by_place=True, min_support=2)
    g = s[(s["place"] == "all") & (s["attribute"] == "colours")].set_index(["value", "period"])
    jan, feb = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")
    assert g.loc[("red", jan), "share"] == pytest.approx(2 / 3)
    assert g.loc[("blue", jan), "share"] == pytest.approx(2 / 3)  # multi-label: shares need not sum to 1
    assert g.loc[("red", feb), "share"] == 0 and g.loc[("red", feb), "n"] == 1  # absent value → 0, not missing
    assert not g.loc[("red", feb), "supported"]
    paris = s[(s["place"] == "paris") & (s["value"] == "red")]
    assert paris["share"].tolist() == [1.0]
    assert (s["ci_low"] <= s["share"]).all() and (s["share"] <= s["ci_high"]).all()


def test_share_matrix_gaps_and_eligible(small_data):
    s = attribute_shares(small_data, "month", min_support=2)
    m, n = share_matrix(s, "month")
    assert np.isnan(m.loc[pd.Timestamp("2024-02-01"), "colours=red"])  # below support → gap
    assert n.loc[pd.Timestamp("2024-02-01"), "colours=red"] == 1
    assert eligible_series(s, "month", min_periods=1, min_support=2).columns.tolist() == ["colours=blue",
                                                                                         "colours=red"]
    assert eligible_series(s, "month", min_periods=2, min_support=2).shape[1] == 0


@pytest.mark.parametrize("freq, periods", [("day", 4), ("week", 4), ("month", 2)])
def test_post_volume_per_period(small_data, freq, periods):
    v = post_volume(small_data, freq)
    assert len(v) == periods and v["posts"].sum() == 4


def test_unknown_inputs_raise(small_data):
    with pytest.raises(ValueError, match="unknown period"):
        attribute_shares(small_data, "year")
    with pytest.raises(ValueError, match="unknown attribute"):
        attribute_shares(small_data, "month", attributes=["shoes"])
