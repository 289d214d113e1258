"""Every YAML under ``configs/`` (the shipped models' recipes) and ``configs/experiments/`` (finished
experiments) loads into its training config and passes validation, so a documented reproduction command
does not fail on a stale option."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionlens.train.alignment import AlignmentTrainConfig
from fashionlens.train.colours import ColourTrainConfig
from fashionlens.train.config import ClassifierTrainConfig, load_config
from fashionlens.train.damage import DamageTrainConfig
from fashionlens.train.detector import DetectorTrainConfig
from fashionlens.train.grader import GraderTrainConfig

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BY_PREFIX = {"classifier_": ClassifierTrainConfig, "detector_": DetectorTrainConfig, "damage_": DamageTrainConfig,
             "grader_": GraderTrainConfig, "alignment": AlignmentTrainConfig, "colours_": ColourTrainConfig}


def _config_class(path: Path) -> type:
    for prefix, cls in BY_PREFIX.items():
        if path.stem.startswith(prefix):
            return cls
    raise AssertionError(f"{path.name}: no training config class for this name; expected a prefix in {list(BY_PREFIX)}")


ALL_CONFIGS = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_loads(path: Path) -> None:
    config = load_config(path, config_class=_config_class(path))
    assert isinstance(config, _config_class(path))


def test_the_configs_folder_is_not_empty() -> None:
    assert len(list(CONFIGS.glob("*.yaml"))) >= 5 and len(ALL_CONFIGS) >= 10
