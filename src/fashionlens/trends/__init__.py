"""Fashion trend discovery: attribute shares over time and place, forecasts, events, social analytics.

    >>> from fashionlens.trends import load_inputs, attribute_shares, build_report
    >>> data = load_inputs(["../shared/datasets/streetstyle/streetstyle27k_test.csv"])  # doctest: +SKIP
    >>> shares = attribute_shares(data, "month", by_place=True)                         # doctest: +SKIP
    >>> build_report(data, "runs/trends")                                               # doctest: +SKIP
"""

from fashionlens.trends.events import (
    detect_shifts,
    detect_spikes,
    lead_lag,
    rising_falling,
)
from fashionlens.trends.forecast import (
    MODELS,
    forecast_all,
    holdout_evaluation,
    predict,
    rolling_backtest,
    summarise_holdout,
)
from fashionlens.trends.inputs import (
    TrendData,
    TrendInputError,
    ValidationReport,
    load_inputs,
    read_post_metadata,
    read_streetstyle,
    read_tag_results,
)
from fashionlens.trends.outlook import forecast_outlook, rank_forecast_changes
from fashionlens.trends.report import build_report
from fashionlens.trends.series import (
    attribute_shares,
    eligible_series,
    post_volume,
    share_matrix,
    wilson_interval,
)
from fashionlens.trends.social import activity, caption_sentiment, hashtags, top_authors

__all__ = [
    "MODELS", "TrendData", "TrendInputError", "ValidationReport", "activity", "attribute_shares", "build_report",
    "caption_sentiment", "detect_shifts", "detect_spikes", "eligible_series", "forecast_all", "forecast_outlook",
    "hashtags", "holdout_evaluation", "lead_lag", "load_inputs", "post_volume", "predict", "rank_forecast_changes",
    "read_post_metadata", "read_streetstyle", "read_tag_results", "rising_falling", "rolling_backtest",
    "share_matrix", "summarise_holdout", "top_authors", "wilson_interval",
]
