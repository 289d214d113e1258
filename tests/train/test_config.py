"""Training configs: YAML loading, overrides, and loud, helpful validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionlens.train.config import (
    ClassifierTrainConfig,
    ConfigError,
    load_config,
    parse_override,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, "utf-8")
    return path


def test_load_yaml_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources: [rise, ccp]\nepochs: 3\nbatch_size: 16\nmode: linear_probe\n"
                            "balance: none\nsplit_fractions: [0.8, 0.1, 0.1]\nlr: 0.01\n")
    cfg = load_config(path)
    assert isinstance(cfg, ClassifierTrainConfig)
    assert cfg.sources == ("rise", "ccp")
    assert cfg.epochs == 3 and cfg.batch_size == 16
    assert cfg.mode == "linear_probe" and cfg.balance == "none"
    assert cfg.split_fractions == (0.8, 0.1, 0.1)
    assert cfg.lr == 0.01
    # untouched options keep their defaults
    assert cfg.backbone == "efficientnet_lite0"
    assert cfg.to_dict()["epochs"] == 3


def test_no_path_gives_defaults_and_empty_file_is_fine(tmp_path: Path) -> None:
    assert load_config() == ClassifierTrainConfig()
    assert load_config(_write(tmp_path, "")) == ClassifierTrainConfig()


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "epochs: 3\n"), overrides={"epochs": 5, "sources": ["rise"]})
    assert cfg.epochs == 5
    assert cfg.sources == ("rise",)


def test_typo_suggests_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_config(_write(tmp_path, "epochz: 3\n"))
    with pytest.raises(ConfigError, match="unknown config option 'batchsize'.*Did you mean 'batch_size'"):
        load_config(overrides={"batchsize": 3})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(("text", "allowed"), [
    ("balance: sometimes", ["oversample", "class_weights", "none"]),
    ("mode: x", ["finetune", "finetune_top", "linear_probe"]),
    ("backbone: resnet", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]),
])
def test_bad_enum_values_name_the_allowed_ones(tmp_path: Path, text: str, allowed: list[str]) -> None:
    key, value = text.split(": ")
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text + "\n"))
    msg = str(exc.value)
    assert key in msg and value in msg
    for a in allowed:
        assert a in msg


@pytest.mark.parametrize("text", ["epochs: 0", "batch_size: -1", "input_size: 0", "sources: [rise, imagenet]",
                                  "device: tpu"])
def test_other_invalid_values(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, text + "\n"))


def test_non_mapping_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(_write(tmp_path, "- epochs\n- 3\n"))


def test_device_values() -> None:
    for ok in ("auto", "cpu", "cuda", "cuda:1"):
        assert ClassifierTrainConfig(device=ok).device == ok


def test_parse_override() -> None:
    assert parse_override("sources=[rise]") == ("sources", ["rise"])
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override(" lr = 0.01") == ("lr", 0.01)
    assert parse_override("backbone_weights=null") == ("backbone_weights", None)
    assert parse_override("out_dir=runs/a=b") == ("out_dir", "runs/a=b")
    cfg = load_config(overrides=dict([parse_override("sources=[rise]"), parse_override("epochs=2")]))
    assert cfg.sources == ("rise",) and cfg.epochs == 2
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("epochs")


@pytest.mark.parametrize("path", [*sorted(CONFIGS.glob("classifier_*.yaml")),
                                  *sorted(CONFIGS.glob("experiments/classifier_*.yaml"))],
                         ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_configs_load(path: Path) -> None:  # classifier configs (detector/alignment ones: their own tests)
    cfg = load_config(path)
    assert cfg.sources == ("clothing", "rise", "ccp")
    assert abs(sum(cfg.split_fractions) - 1) < 1e-9
    assert cfg.model_name.startswith("garment-classifier")


def test_there_are_shipped_configs() -> None:
    assert len(list(CONFIGS.glob("*.yaml"))) >= 3
