"""Person-aware garment masks (issue 28, optional): keep each garment's mask on the person.

Garment masks leak onto skin, hair and background. MediaPipe's selfie segmenter
(``selfie_segmentation.tflite``, Apache-2.0, shipped inside the ``mediapipe==0.10.14`` wheel; later
versions ship no models) gives a person mask in one small network pass; a garment's mask is
intersected with it (optionally dilated by ``dilate_px`` so edges are not eaten).

The network runs in **OpenCV's DNN module** (``cv2.dnn.readNetFromTFLite``), which the project
already depends on; mediapipe itself is never imported. That matters: mediapipe 0.10.14 requires
``protobuf<5`` while ``onnx`` (the ``train`` extra) requires ``protobuf>=6.31``, so installing
mediapipe's dependencies would break ONNX export. Install the wheel for its model file only::

    pip install --no-deps mediapipe==0.10.14

or point ``FASHIONLENS_PERSON_MODEL`` (or ``PersonSegmenter(model=...)``) at a copy of the
``.tflite`` file. Without either, :func:`person_model_path` raises :class:`PersonModelMissing`
with that line.

Preprocessing as MediaPipe's graph: the RGB photo resized to 256×256 (area interpolation), scaled to
[0, 1], NCHW; output: a 256×256 person probability, resized back bilinearly and thresholded at 0.5.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashionlens.result import Garments

#: the pinned wheel whose model file is used
MEDIAPIPE_PIN = "mediapipe==0.10.14"
#: the model file's path inside the mediapipe package
MODEL_IN_WHEEL = ("modules", "selfie_segmentation", "selfie_segmentation.tflite")
#: environment variable naming the .tflite directly
MODEL_ENV = "FASHIONLENS_PERSON_MODEL"
INPUT_SIZE = 256


class PersonModelMissing(RuntimeError):
    """The person segmenter's model file is not installed."""


def person_model_path() -> Path:
    """The selfie-segmentation ``.tflite``: ``$FASHIONLENS_PERSON_MODEL``, else inside the installed mediapipe
    wheel (found without importing mediapipe); raises :class:`PersonModelMissing` saying how to install it."""
    env = os.environ.get(MODEL_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise PersonModelMissing(f"{MODEL_ENV}={env}: no such file (expected selfie_segmentation.tflite)")
        return path
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root).joinpath(*MODEL_IN_WHEEL)
            if path.is_file():
                return path
    raise PersonModelMissing(
        "person-aware masks need MediaPipe's selfie segmentation model: "
        f"pip install --no-deps {MEDIAPIPE_PIN}  (its model file only; mediapipe's own dependencies are not "
        f"needed and protobuf<5 would break onnx), or set {MODEL_ENV} to a selfie_segmentation.tflite")


class PersonSegmenter:
    """Person probability map of a photo (selfie segmentation in OpenCV DNN; see the module docstring)."""

    def __init__(self, model: str | Path | None = None, *, threshold: float = 0.5, threads: int | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected a number in (0, 1), got {threshold}")
        self.path = Path(model) if model is not None else person_model_path()
        if not self.path.is_file():
            raise PersonModelMissing(f"person segmenter model not found: {self.path}")
        if threads is not None:
            cv2.setNumThreads(int(threads))
        self.net = cv2.dnn.readNetFromTFLite(str(self.path))
        self.threshold = float(threshold)

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """``H×W`` float32 person probability of an ``H×W×3`` uint8 RGB photo."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        self.net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        out = np.asarray(self.net.forward(), np.float32).reshape(INPUT_SIZE, INPUT_SIZE)
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """``H×W`` bool person mask (probability ≥ ``threshold``)."""
        return self.probability(rgb) >= self.threshold


def restrict_to_person(garments: Garments, person: np.ndarray, *, dilate_px: int = 0,
                       types: Collection[str] | None = None, min_kept: float = 0.0) -> Garments:
    """Garments whose masks are intersected with ``person`` (``H×W`` bool, the masks' size).

    ``dilate_px`` grows the person mask first; ``types`` limits the change to those object types (``None``:
    all); a garment that would keep less than ``min_kept`` of its mask keeps its own mask (the person
    segmenter missed it: a bag held away from the body). Boxes, types and scores are unchanged."""
    if garments.mask is None or not len(garments):
        return garments
    if person.shape != garments.mask.shape[1:]:
        raise ValueError(f"person mask is {person.shape}, garment masks are {garments.mask.shape[1:]}")
    if dilate_px > 0:
        k = 2 * int(dilate_px) + 1
        person = cv2.dilate(person.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    masks = garments.mask.copy()
    for i, t in enumerate(garments.object_type):
        if types is not None and t not in types:
            continue
        own = masks[i]
        cut = own & person
        area = int(own.sum())
        if area and cut.sum() >= min_kept * area:
            masks[i] = cut
    return Garments(xyxy=garments.xyxy, object_type=garments.object_type, confidence=garments.confidence, mask=masks,
                    data=garments.data, category=garments.category, category_top=garments.category_top,
                    attributes=garments.attributes, embedding=garments.embedding)


class PersonAwareDetector:
    """A :class:`~fashionlens.detection.detector.GarmentDetector` whose masks are kept on the person.

    Behaves as the wrapped detector (every other attribute is the detector's); :meth:`candidates` and
    :meth:`detect_rgb` intersect masks with the person mask (:func:`restrict_to_person`), so it can stand in
    for the detector in ``evaluate_detector`` or a ``Tagger``."""

    def __init__(self, detector: Any, segmenter: PersonSegmenter | None = None, *, dilate_px: int = 0,
                 types: Collection[str] | None = None, min_kept: float = 0.0) -> None:
        self.detector = detector
        self.segmenter = segmenter or PersonSegmenter()
        self.dilate_px, self.types, self.min_kept = dilate_px, types, min_kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def _restrict(self, rgb: np.ndarray, garments: Garments) -> Garments:
        if garments.mask is None or not len(garments):
            return garments
        return restrict_to_person(garments, self.segmenter.mask(rgb), dilate_px=self.dilate_px, types=self.types,
                                  min_kept=self.min_kept)

    def candidates(self, rgb: np.ndarray, *args: Any, **kwargs: Any) -> Garments:
        return self._restrict(rgb, self.detector.candidates(rgb, *args, **kwargs))

    def detect_rgb(self, rgb: np.ndarray, *args: Any, **kwargs: Any) -> Garments:
        return self._restrict(rgb, self.detector.detect_rgb(rgb, *args, **kwargs))

    def detect(self, image: Any, settings: Any = None) -> Garments:
        """As ``GarmentDetector.detect`` (full-resolution boxes and masks), through this :meth:`detect_rgb`."""
        from fashionlens.detection.detector import GarmentDetector

        return GarmentDetector.detect(self, image, settings)  # type: ignore[arg-type]

    def detect_many(self, images: Any, settings: Any = None) -> list[Garments]:
        return [self.detect(im, settings) for im in images]
