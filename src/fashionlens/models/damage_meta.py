"""The damage head's metadata and file format, importable without torch.

:class:`DamageMeta` travels with the weights: inside the ``.pt`` file (:mod:`fashionlens.models.damage`)
and, as JSON under the key ``fashionlens_meta``, inside the ONNX export's custom metadata
(:mod:`fashionlens.runtime.damage_onnx`), so ONNX Runtime runs the head without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fashionlens.taxonomy import DAMAGE_TYPES

__all__ = ["DAMAGE_CLASS_NAMES", "DAMAGE_WEIGHTS_FORMAT", "DamageMeta"]

DAMAGE_WEIGHTS_FORMAT = "fashionlens/damage-segmenter/v1"
DAMAGE_CLASS_NAMES: tuple[str, ...] = ("none", *DAMAGE_TYPES)


@dataclass
class DamageMeta:
    """What rebuilds and runs a damage head besides its tensors."""

    name: str
    version: str
    class_names: tuple[str, ...] = DAMAGE_CLASS_NAMES
    input_side: int = 448
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    threshold: float = 0.5
    min_region_share: float | list[float] = 0.001  # one number, or one per damage type
    # a fitted region verifier (fashionlens.grading.region_verifier.RegionVerifier.to_dict()); when present it
    # decides which damage regions to keep, and threshold / min_region_share are the plain fallback decoding
    verifier: dict[str, Any] | None = None
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DamageMeta:
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"damage meta: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
        d = dict(d)
        for key in ("class_names", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
