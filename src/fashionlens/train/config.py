"""Typed training configs loaded from YAML, validated once; typos answered with a suggestion."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from fashionlens.io.safe_yaml import YamlInputError, load_yaml, load_yaml_file, short_repr
from fashionlens.models.backbones import BACKBONES
from fashionlens.paths import default_data_root, runs_path

Balance = Literal["oversample", "class_weights", "none"]
Mode = Literal["finetune", "finetune_top", "linear_probe"]

#: Largest config file :func:`load_config` reads, in bytes.
MAX_CONFIG_BYTES = 1_000_000
#: Longest ``--set key=value`` value :func:`parse_override` parses, in characters.
MAX_OVERRIDE_CHARS = 10_000


class ConfigError(ValueError):
    """A config file or value is not what the trainer expects."""


@dataclass
class ClassifierTrainConfig:
    """Everything that defines one classifier training run (see ``configs/*.yaml``)."""

    data_root: str = field(default_factory=default_data_root)
    sources: tuple[str, ...] = ("clothing", "rise", "ccp")
    cache_dir: str = field(default_factory=lambda: runs_path("cache", "classifier-224-s0"))
    out_dir: str = field(default_factory=lambda: runs_path("classifier"))
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
            raise ConfigError(f"sources: expected a list such as [clothing, rise, ccp], "
                              f"got {short_repr(self.sources)}")
        self.sources = tuple(self.sources)
        try:
            self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ConfigError(f"split_fractions: expected three numbers, "
                              f"got {short_repr(self.split_fractions)}") from None
        fr = self.split_fractions
        if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
            raise ConfigError(f"split_fractions: expected three non-negative numbers summing to 1, got {list(fr)}")
        for name in ("epochs", "batch_size", "input_size", "patience", "workers", "seed", "freeze_blocks",
                     "feature_views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {short_repr(value)}")
        for name in ("lr", "backbone_lr", "weight_decay", "warmup_epochs", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {short_repr(value)}")
        from fashionlens.models.heads import ATTRIBUTE_HEADS

        head_names = ("category",) + ATTRIBUTE_HEADS
        if not isinstance(self.head_loss_weights, dict):
            raise ConfigError(f"head_loss_weights: expected a mapping of head: weight, got "
                              f"{short_repr(self.head_loss_weights)}")
        for key in self.head_loss_weights:
            if key not in head_names:
                close = difflib.get_close_matches(key, head_names, n=1) if _typo_like(key) else []
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"head_loss_weights: unknown head {short_repr(key)}.{hint} "
                                  f"Heads: {', '.join(head_names)}")
        if not isinstance(self.backbone, str) or self.backbone not in BACKBONES:
            raise ConfigError(f"backbone: expected one of {sorted(BACKBONES)}, got {short_repr(self.backbone)}")
        for name, allowed in (("mode", get_args(Mode)), ("balance", get_args(Balance))):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {short_repr(value)}")
        unknown_sources = {str(s) for s in self.sources} - {"clothing", "rise", "ccp"}
        if unknown_sources:
            raise ConfigError(f"sources: unknown {short_repr(sorted(unknown_sources))}; expected clothing, rise, ccp")
        for name in ("epochs", "batch_size", "input_size"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {short_repr(getattr(self, name))}")
        if not isinstance(self.device, str) or (self.device not in ("auto", "cpu", "cuda")
                                                and not self.device.startswith("cuda:")):
            raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {short_repr(self.device)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                config_class: type[Any] = ClassifierTrainConfig) -> Any:
    """Load a YAML config into ``config_class`` (a dataclass), apply ``overrides`` (e.g. from
    ``--set key=value``) and validate.

    The file is read with :func:`fashionlens.io.safe_yaml.load_yaml_file`: at most
    :data:`MAX_CONFIG_BYTES`, UTF-8, no anchors or aliases, bounded nesting.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: the file cannot be read as such YAML, or a value is invalid.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = load_yaml_file(path, max_bytes=MAX_CONFIG_BYTES) or {}
        except YamlInputError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value, got {type(raw).__name__}")
    raw.update(overrides or {})
    names = [f.name for f in dataclasses.fields(config_class)]
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"expected option names as text; got {short_repr(key)} ({type(key).__name__})")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1) if _typo_like(key) else []
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config option {short_repr(key)}.{hint} Options: {', '.join(names)}")
    try:
        return config_class(**raw)
    except (TypeError, AttributeError) as exc:  # a value of a type the config's checks did not expect
        raise ConfigError(_clip(str(exc))) from None


def _typo_like(word: str) -> bool:
    """Worth a "did you mean" search: a short word (difflib on huge text is slow and pointless)."""
    return isinstance(word, str) and len(word) <= 100


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (``epochs=3``, ``sources=[rise]``).

    Raises:
        ConfigError: no ``=``, or the value is not such YAML (see :func:`load_config`) or longer than
            :data:`MAX_OVERRIDE_CHARS`.
    """
    if "=" not in item:
        raise ConfigError(f"expected key=value, got {short_repr(item)}")
    key, value = item.split("=", 1)
    try:
        return key.strip(), load_yaml(value, source=f"--set {short_repr(key.strip(), 60)}",
                                      max_bytes=MAX_OVERRIDE_CHARS)
    except YamlInputError as exc:
        raise ConfigError(str(exc)) from None
