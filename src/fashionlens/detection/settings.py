"""Run-time detection settings (torch-free, so a tagger's configuration can name them without
loading a network): thresholds, post-processing rules, how many detections to keep."""

from __future__ import annotations

from dataclasses import dataclass

#: names of the post-processing rules (:data:`fashionlens.detection.rules.RULES` holds them)
RULE_NAMES: tuple[str, ...] = ("duplicates", "hand_footwear", "sparse_mask")


@dataclass(frozen=True)
class DetectSettings:
    """Run-time detection settings; ``None`` keeps the value stored with the weights.

    ``score_thresh``: keep detections scoring at least this; ``nms_thresh``: IoU above which
    same-type boxes are suppressed; ``rules``: names from :data:`fashionlens.detection.rules.RULES`;
    ``mask_thresh``: mask probability threshold.
    """

    score_thresh: float | None = None
    nms_thresh: float | None = None
    max_detections: int = 20
    rules: tuple[str, ...] = ()
    mask_thresh: float = 0.5

    def __post_init__(self) -> None:
        for name in ("score_thresh", "nms_thresh"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        unknown = [r for r in self.rules if r not in RULE_NAMES]
        if unknown:
            raise ValueError(f"unknown post-processing rule(s) {unknown}; expected some of {sorted(RULE_NAMES)}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections: expected >= 1, got {self.max_detections}")
