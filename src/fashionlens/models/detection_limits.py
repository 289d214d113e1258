"""Per-call post-processing limits of a detector (torch-free: both runtimes and the settings use it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectionLimits:
    """Per-call post-processing limits: keep candidates scoring above ``score_thresh``, suppress
    same-class boxes overlapping more than ``nms_thresh`` (IoU), keep at most ``detections_per_img``.
    Passed to each call instead of written onto the network, so one network serves every setting."""

    score_thresh: float
    nms_thresh: float
    detections_per_img: int
