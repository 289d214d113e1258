from pathlib import Path

import pandas as pd
import pytest

from fashionlens.cli import main
from fashionlens.trends.inputs import load_inputs
from fashionlens.trends.report import build_report
from fashionlens.trends.synthetic import write_tagged_posts


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    return write_tagged_posts(tmp_path_factory.mktemp("gen"), 6000, months=30, seed=3)


def test_report_from_generated_tagged_posts(generated, tmp_path: Path):
    res, meta = generated
    data = load_inputs([res], meta)
    assert data.report.rows_rejected == 0 and len(data.posts) == 6000
    summary = build_report(data, tmp_path, max_forecast_series=2, models=["mean", "last", "cyclic"],
                           progress=False)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    for name in ("shares", "spikes", "shifts", "forecasts", "forecast_scores", "rising_falling", "lead_lag",
                 "activity", "hashtags", "hashtag_pairs", "sentiment", "top_authors_activity", "validation"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    shares = pd.read_csv(tmp_path / "shares.csv")
    assert {"all", "paris"} <= set(shares["place"])
    # the generator's rising pattern is found rising in the global series
    rf = pd.read_csv(tmp_path / "rising_falling.csv")
    row = rf[(rf["place"] == "all") & (rf["series"] == "pattern=striped")].iloc[0]
    assert row["trend"] == "rising"
    assert summary["forecast_series"] == 2


def test_cli_trends_commands(generated, tmp_path: Path, capsys):
    res, meta = generated
    assert main(["trends", "events", str(res), "--meta", str(meta), "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "spikes.csv").is_file()
    assert main(["trends", "forecast", str(res), "--meta", str(meta), "--out", str(tmp_path / "fc"),
                 "--max-series", "1", "-q"]) == 0
    fc = pd.read_csv(tmp_path / "fc" / "forecasts.csv")
    assert len(fc) == 6 and fc["model"].nunique() == 1
    capsys.readouterr()
    # a usage error (JSONL without metadata) is reported, not a traceback
    assert main(["trends", "report", str(res), "--out", str(tmp_path / "r")]) == 2
    assert "--meta" in capsys.readouterr().err
