"""When the classifier's object type replaces the detector's for a detected garment.

The detector names object types well on street photos, the classifier (trained mostly on whole
single-garment photos) on product photos, where the garment fills much of the frame. A detected
garment therefore takes the classifier's object type — its category probabilities on the crop summed
per type — when that type's probability reaches ``threshold``, or the lower ``large_threshold``
when the box covers at least ``large_share`` of the photo. Box, score and mask stay the detector's.
The defaults were chosen on validation (experiments/README.md, "Object type: detector + classifier").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TypeFusion:
    """Thresholds of the classifier's object-type probability from which it overrides the detector."""

    threshold: float = 0.8
    large_threshold: float = 0.5
    large_share: float = 0.4

    def __post_init__(self) -> None:
        for name in ("threshold", "large_threshold"):
            value = getattr(self, name)
            if not 0.5 <= value <= 1.0:
                raise ValueError(f"TypeFusion.{name} must be in [0.5, 1] (a majority type), got {value}")
        if not 0.0 < self.large_share <= 1.0:
            raise ValueError(f"TypeFusion.large_share must be in (0, 1], got {self.large_share}")

    def choose(self, detected: int, type_probs: np.ndarray, box_share: float) -> int:
        """The object-type index to report: ``detected`` or the classifier's arg-max type.

        ``type_probs``: the classifier's object-type probabilities on the crop; ``box_share``: the
        box's area over the photo's.
        """
        best = int(np.argmax(type_probs))
        needed = self.large_threshold if box_share >= self.large_share else self.threshold
        return best if float(type_probs[best]) >= needed else detected


#: the default of ``fashionlens tag``
DEFAULT_TYPE_FUSION = TypeFusion()
