"""``fashionlens.paths``: the default data and runs folders, and their environment overrides reaching the
training configs and command-line defaults."""

from __future__ import annotations

import pytest

from fashionlens.paths import DATA_ENV, RUNS_ENV, default_data_root, default_runs_dir, runs_path


def test_defaults_are_the_checkout_relative_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv(RUNS_ENV, "  ")  # blank counts as unset
    assert default_data_root() == "../shared/datasets"
    assert default_runs_dir() == "runs"
    assert runs_path("cache", "classifier-224-s0") == "runs/cache/classifier-224-s0"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(RUNS_ENV, "~/fl-runs")
    assert default_data_root() == str(tmp_path / "data")
    assert not default_runs_dir().startswith("~") and default_runs_dir().endswith("fl-runs")
    assert runs_path("detector").endswith("fl-runs/detector")


@pytest.mark.train  # the training configs
def test_configs_take_their_defaults_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.train.config import ClassifierTrainConfig
    from fashionlens.train.damage import DamageTrainConfig
    from fashionlens.train.detector import DetectorTrainConfig

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.delenv(RUNS_ENV, raising=False)
    c = ClassifierTrainConfig()
    assert (c.data_root, c.cache_dir, c.out_dir) == ("../shared/datasets", "runs/cache/classifier-224-s0",
                                                      "runs/classifier")
    monkeypatch.setenv(DATA_ENV, "/data/sets")
    monkeypatch.setenv(RUNS_ENV, "/scratch/runs")
    d = DetectorTrainConfig()
    assert (d.data_root, d.cache_dir, d.out_dir) == ("/data/sets", "/scratch/runs/cache/detector", "/scratch/runs/detector")
    assert DamageTrainConfig(data_root="elsewhere").data_root == "elsewhere"  # an explicit value wins
