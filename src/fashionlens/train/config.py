"""Typed training configs loaded from YAML, validated once; typos answered with a suggestion."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from fashionlens.models.backbones import BACKBONES

Balance = Literal["oversample", "class_weights", "none"]
Mode = Literal["finetune", "finetune_top", "linear_probe"]


class ConfigError(ValueError):
    """A config file or value is not what the trainer expects."""


@dataclass
class ClassifierTrainConfig:
    """Everything that defines one classifier training run (see ``configs/*.yaml``)."""

    data_root: str = "../shared/datasets"
    sources: tuple[str, ...] = ("clothing", "rise", "ccp")
    cache_dir: str = "runs/cache/classifier-224-s0"
    out_dir: str = "runs/classifier"
    backbone: str = "efficientnet_lite0"
    backbone_weights: str | None = None  # override the packaged ImageNet state dict (a path)
    input_size: int = 224
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    mode: Mode = "finetune"
    freeze_blocks: int = 4  # finetune_top: leading backbone blocks frozen (their features cached)
    feature_views: int = 3  # finetune_top: cached views per training image (image, mirror, random crops)
    balance: Balance = "oversample"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3  # heads
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    head_loss_weights: dict[str, float] = field(default_factory=lambda: {
        "category": 1.0, "pattern": 0.5, "colours": 1.0, "material": 0.5, "sleeve": 0.5, "neckline": 0.3, "fit": 0.3})
    patience: int = 4
    device: str = "auto"  # auto | cpu | cuda
    workers: int = 2
    limit: int | None = None  # cap samples per split (smoke tests); None = all
    model_name: str = "garment-classifier"
    model_version: str = "0"

    def __post_init__(self) -> None:
        if isinstance(self.sources, str) or not isinstance(self.sources, (list, tuple)):
            raise ConfigError(f"sources: expected a list such as [clothing, rise, ccp], got {self.sources!r}")
        self.sources = tuple(self.sources)
        try:
            self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ConfigError(f"split_fractions: expected three numbers, got {self.split_fractions!r}") from None
        fr = self.split_fractions
        if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
            raise ConfigError(f"split_fractions: expected three non-negative numbers summing to 1, got {list(fr)}")
        for name in ("epochs", "batch_size", "input_size", "patience", "workers", "seed", "freeze_blocks",
                     "feature_views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
        for name in ("lr", "backbone_lr", "weight_decay", "warmup_epochs", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {value!r}")
        from fashionlens.models.heads import ATTRIBUTE_HEADS

        head_names = ("category",) + ATTRIBUTE_HEADS
        for key in self.head_loss_weights:
            if key not in head_names:
                close = difflib.get_close_matches(key, head_names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"head_loss_weights: unknown head {key!r}.{hint} Heads: {', '.join(head_names)}")
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone: expected one of {sorted(BACKBONES)}, got {self.backbone!r}")
        for name, allowed in (("mode", get_args(Mode)), ("balance", get_args(Balance))):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {value!r}")
        unknown_sources = set(self.sources) - {"clothing", "rise", "ccp"}
        if unknown_sources:
            raise ConfigError(f"sources: unknown {sorted(unknown_sources)}; expected clothing, rise, ccp")
        for name in ("epochs", "batch_size", "input_size"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                config_class: type[Any] = ClassifierTrainConfig) -> Any:
    """Load a YAML config into ``config_class`` (a dataclass), apply ``overrides`` (e.g. from
    ``--set key=value``) and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text("utf-8")
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value, got {type(raw).__name__}")
    raw.update(overrides or {})
    names = [f.name for f in dataclasses.fields(config_class)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config option {key!r}.{hint} Options: {', '.join(names)}")
    try:
        return config_class(**raw)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (``epochs=3``, ``sources=[rise]``)."""
    if "=" not in item:
        raise ConfigError(f"expected key=value, got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), yaml.safe_load(value)
