"""The Tagger: photo → garments → ``fashionlens/result/v2`` records.

With a detector (:class:`~fashionlens.detection.detector.GarmentDetector`) each photo goes detect → crop →
classify: every detected garment is cropped with a margin and classified; its object type comes
from the detector unless the classifier, summing its category probabilities per object type, is
sure enough of another (:class:`~fashionlens.detection.type_fusion.TypeFusion`; ``type_fusion=None`` turns it
off); its category is the classifier's best category *of that type*, and its colour shares come
from the pixels of its mask; of garments whose boxes overlap with IoU > 0.7 only the higher-scored is kept, on the
final object types (:class:`~fashionlens.detection.cross_type.CrossTypeRule`; ``cross_type=None`` turns it off).
Without a detector (``--whole-image``) each photo is one
garment: the photo is classified as a whole, its object type is the category head's probabilities
summed per object type, and colour shares come from the garment's pixels when it lies on a plain
backdrop (:func:`~fashionlens.colours.naming.whole_image_pixels`), else from the central region's pixels.

Colour *names* come from the classifier's colour head; on a plain-backdrop photo, where the garment's
own pixels are known (its detector mask, or the backdrop search in whole-image mode), the pixel colour
model (:mod:`fashionlens.models.pixel_colours`) is averaged in (``colour_model=None`` turns it off).

Scores are calibrated: the classifier's calibration sidecar (:mod:`fashionlens.models.calibration`, fitted on
its validation split) maps the backend's probabilities to calibrated ones in numpy, the same for the ONNX
and PyTorch backends; weights without one run uncalibrated and say so in ``model["calibration"]``. With an
operating point (``precision``, e.g. 0.90 in ``fashionlens tag``) a field whose calibrated score is below the
threshold at which it reached that precision on validation is emitted as unsure (``uncertain``; id None
unless ``keep_uncertain``), and a colour is listed only when sure (``docs/calibration.md``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from fashionlens.colours.naming import (
    GarmentPixels,
    colour_labels,
    garment_pixels,
    on_plain_backdrop,
    whole_image_pixels,
)
from fashionlens.detection.cross_type import DEFAULT_CROSS_TYPE, CrossTypeRule
from fashionlens.detection.settings import DetectSettings
from fashionlens.detection.type_fusion import DEFAULT_TYPE_FUSION, TypeFusion
from fashionlens.imageio import DecodedImage
from fashionlens.models.calibration import Calibration, calibration_path
from fashionlens.models.meta import EMBEDDING_OUTPUT, ClassifierMeta
from fashionlens.models.pixel_colours import PixelColourModel, colour_features
from fashionlens.models.prior_shift import PriorShift
from fashionlens.models.registry import DEFAULT_PIXEL_COLOURS, default_weights_path
from fashionlens.result import (  # noqa: F401 - RESULT_SCHEMA re-exported
    RESULT_SCHEMA,
    Attributes,
    Garments,
    Label,
    LabelList,
    TagError,
    TagResult,
)
from fashionlens.runtime.backends import BackendName, ClassifierBackend, create_backend
from fashionlens.taxonomy import load_taxonomy

if TYPE_CHECKING:
    from fashionlens.detection.detector import GarmentDetector

log = logging.getLogger(__name__)

#: ``Tagger(colour_model=...)``: the shipped pixel colour model when it fits the classifier's colour head
DEFAULT_COLOUR_MODEL = "default"
#: ``Tagger(calibration=...)``: the calibration sidecar next to the classifier weights, when there is one
DEFAULT_CALIBRATION = "default"
#: key of the uncalibrated category probabilities among a calibrated tagger's outputs (what type fusion reads)
UNCALIBRATED_CATEGORY = "category_uncalibrated"
#: candidates listed with an unsure single-valued field
UNSURE_CANDIDATES = 3
#: whether ``Tagger``/``TaggerConfig`` drop cross-type duplicates by default (:mod:`fashionlens.detection.cross_type`)
CROSS_TYPE_DEFAULT_ON = True


#: attributes reported only for garments of these object types
_ATTRIBUTE_OBJECT_TYPES: dict[str, tuple[str, ...]] = {
    "sleeve": ("upper-body", "full-body"),
    "neckline": ("upper-body", "full-body"),
    "fit": ("upper-body", "lower-body", "full-body"),
}


def preprocess(rgb: np.ndarray, meta: ClassifierMeta) -> np.ndarray:
    """``H×W×3`` uint8 → normalised float32 ``(3, S, S)``, squashed to ``S × S`` as in training."""
    s = meta.input_size
    if rgb.shape[:2] != (s, s):
        rgb = np.asarray(Image.fromarray(rgb).resize((s, s), Image.BILINEAR))
    mean = np.asarray(meta.mean, dtype=np.float32) * 255.0
    std = np.asarray(meta.std, dtype=np.float32) * 255.0
    return ((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)


def error_record(path: str, exc: BaseException, *, model: dict[str, str]) -> dict[str, Any]:
    """The ``fashionlens/result/v2`` record of an input that could not be used."""
    return TagResult.failed(path, exc, model=model).to_json()


def inference_failed(exc: BaseException) -> TagError:
    """The error of a photo that decoded but could not be tagged (a model or pipeline failure)."""
    return TagError(type="inference_failed", message=f"{type(exc).__name__}: {exc}"[:500])


def inference_failed_record(path: str, exc: BaseException, *, model: dict[str, str]) -> dict[str, Any]:
    """The error record of a photo that decoded but could not be tagged."""
    return TagResult.failed(path, inference_failed(exc), model=model).to_json()


@dataclass(frozen=True)
class TaggerConfig:
    """Everything that decides how a :class:`Tagger` is built — the one way to build one, used by
    ``fashionlens tag``, resumable jobs, the Ray engine's actors (it is picklable; each actor loads
    the models itself), the service, grading and search. The fields are those of ``fashionlens tag``.

    ``threads``: inference threads (``None``: the runtime's default; per actor on Ray).
    ``detect_settings``: the detector's default settings (thresholds, rules); a call may pass others.
    ``precision``: the operating point — a field below the calibrated-score threshold at which it reached this
    precision on validation is emitted as unsure (``None``: every field emitted as sure, the behaviour of
    ``fashionlens/result/v1``; ``fashionlens tag`` defaults to 0.90). ``keep_uncertain``: unsure fields keep
    their best guess (still marked ``uncertain``) instead of ``id: null`` / no colours.
    ``detection_precision``: also drop detected garments whose calibrated detector score is below the
    threshold at which detections reached this precision on validation (``None``: only the detector's stored
    score threshold drops detections).
    ``street_priors``: move the pattern head of detected (street) crops to the pattern priors of street photos
    (the sidecar ``<weights>.street-priors.json``, :mod:`fashionlens.models.prior_shift`; ``docs/street_labels.md``).
    ``cross_type``: one garment per region — of detected garments whose boxes overlap with IoU > 0.7 (final object
    types) only the higher-scored is kept (:mod:`fashionlens.detection.cross_type`; ``docs/detection.md``).

    >>> tagger = TaggerConfig(whole_image=True).build()
    """

    weights: str | None = None
    backend: BackendName = "auto"
    threads: int | None = None
    whole_image: bool = False
    detector: str | None = None
    detect_settings: DetectSettings | None = None
    detector_backend: str = "auto"
    embed: bool = False
    type_fusion: bool = True
    pixel_colours: bool = True
    precision: float | None = None
    keep_uncertain: bool = False
    detection_precision: float | None = None
    street_priors: bool = True
    cross_type: bool = CROSS_TYPE_DEFAULT_ON

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend: expected auto, onnx or torch, got {self.backend!r}")
        if self.detector_backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"detector_backend: expected auto, onnx or torch, got {self.detector_backend!r}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads: expected a positive number or None, got {self.threads}")
        for name in ("precision", "detection_precision"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name}: expected a number in (0, 1] or None, got {value}")

    def build(self) -> Tagger:
        """Load the models and build the tagger."""
        detector = None
        if not self.whole_image:
            from fashionlens.detection.detector import GarmentDetector

            detector = GarmentDetector(self.detector, settings=self.detect_settings or DetectSettings(),
                                       threads=self.threads, backend=self.detector_backend)
        fusion = {} if self.type_fusion else {"type_fusion": None}
        colours = {} if self.pixel_colours else {"colour_model": None}
        priors = {} if self.street_priors else {"street_priors": None}
        return Tagger(self.weights, backend=self.backend, threads=self.threads, detector=detector, embed=self.embed,
                      precision=self.precision, keep_uncertain=self.keep_uncertain,
                      detection_precision=self.detection_precision,
                      cross_type=DEFAULT_CROSS_TYPE if self.cross_type else None, **fusion, **colours, **priors)

    def job_settings(self, *, max_pixels: int) -> dict[str, Any]:
        """The ``settings`` of a :class:`~fashionlens.jobs.store.TagJob` (what changes results), the same
        keys and values for every engine, so a job can be resumed by either."""
        settings = self.detect_settings
        if not self.whole_image and settings is None:
            settings = DetectSettings()
        operating: dict[str, Any] = {} if self.precision is None else {"precision": self.precision,
                                                                       "keep_uncertain": self.keep_uncertain}
        if self.detection_precision is not None and not self.whole_image:
            operating["detection_precision"] = self.detection_precision
        if not self.street_priors and not self.whole_image:
            operating["street_priors"] = False
        if self.cross_type != CROSS_TYPE_DEFAULT_ON and not self.whole_image:
            operating["cross_type"] = self.cross_type
        return {**operating, "weights": None if self.weights is None else str(self.weights), "backend": self.backend,
                "whole_image": self.whole_image, "embed": self.embed, "max_pixels": max_pixels,
                "detector": None if self.whole_image or self.detector is None else str(self.detector),
                "detector_backend": None if self.whole_image else self.detector_backend,
                "detect_settings": None if self.whole_image else asdict(settings)}


class Tagger:
    """Load a classifier (and optionally a detector) once, then tag batches of decoded photos.

    :meth:`tag` returns one :class:`~fashionlens.result.TagResult` per photo, in order; its
    ``garments`` (:class:`~fashionlens.result.Garments`) hold each garment's object type, category,
    attributes and colours. Without a ``detector`` each photo is one whole-image garment; with a
    :class:`~fashionlens.detection.detector.GarmentDetector` every garment is found, cropped and
    classified. ``weights``: classifier weights (default: the shipped ``garment-classifier-lite0``);
    ``backend``: ``auto`` (ONNX Runtime when an export sits next to the weights), ``onnx`` or ``torch``.
    :meth:`tag_batch` gives the same results as ``fashionlens/result/v2`` JSON records.

    >>> from fashionlens import Tagger, load_image
    >>> tagger = Tagger()                       # the shipped default model, ONNX when exported
    >>> [result] = tagger.tag([load_image("photo.jpg")], ["photo.jpg"])
    >>> print(result.garments.category)         # one Label (id, score) per garment
    >>> records = tagger.tag_batch([load_image("photo.jpg")], ["photo.jpg"])   # JSON dicts

    ``colour_model``: ``"default"`` joins the shipped pixel colour model to the colour head whenever the
    classifier's colour head has its colours (else the head alone); a :class:`PixelColourModel` or a
    path to one; ``None`` for the head alone.

    ``calibration``: ``"default"`` loads the weights' sidecar (``<weights>.calibration.json``) when there is one
    (else the scores stay uncalibrated, and ``model["calibration"]`` says so); a
    :class:`~fashionlens.models.calibration.Calibration` or a path to one; ``None``: uncalibrated.
    ``precision``: the operating point (see :class:`TaggerConfig`; needs a calibration with operating curves,
    else every field is emitted as sure); ``keep_uncertain``: unsure fields keep their best guess.
    With ``calibration="default"`` the detector's sidecar (next to its weights) calibrates each detected
    garment's ``score``; ``detection_precision`` then drops detections below the calibrated score at which
    detections reached that precision on validation.
    ``street_priors``: ``"default"`` moves the heads of detected (street) crops named in the weights' sidecar
    (``<weights>.street-priors.json``: the pattern head) to their street-photo priors before calibration
    (whole-image tagging and whole-photo fallbacks are untouched); a :class:`PriorShift` or a path; ``None``: off.
    ``cross_type``: the :class:`~fashionlens.detection.cross_type.CrossTypeRule` applied to each photo's classified
    detections (final object types; default: one garment per region at box IoU > 0.7); ``None``: every detection kept.
    """

    def __init__(self, weights: str | Path | None = None, *, backend: BackendName = "auto",
                 threads: int | None = None, top_k: int = 3, detector: GarmentDetector | None = None,
                 crop_margin: float = 0.1, embed: bool = False,
                 type_fusion: TypeFusion | None = DEFAULT_TYPE_FUSION,
                 colour_model: PixelColourModel | str | None = DEFAULT_COLOUR_MODEL,
                 calibration: Calibration | str | Path | None = DEFAULT_CALIBRATION,
                 precision: float | None = None, keep_uncertain: bool = False,
                 detection_precision: float | None = None,
                 street_priors: PriorShift | str | Path | None = DEFAULT_CALIBRATION,
                 cross_type: CrossTypeRule | None = DEFAULT_CROSS_TYPE if CROSS_TYPE_DEFAULT_ON else None) -> None:
        if type_fusion is not None and not isinstance(type_fusion, TypeFusion):
            raise TypeError(f"type_fusion: expected a TypeFusion or None, got {type(type_fusion).__name__}")
        if cross_type is not None and not isinstance(cross_type, CrossTypeRule):
            raise TypeError(f"cross_type: expected a CrossTypeRule or None, got {type(cross_type).__name__}")
        for name, value in (("precision", precision), ("detection_precision", detection_precision)):
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name}: expected a number in (0, 1] or None, got {value}")
        self.backend: ClassifierBackend = create_backend(weights, backend=backend, threads=threads)
        self.type_fusion = type_fusion
        self.cross_type = cross_type
        self.embed = embed  # store each garment's embedding (see fashionlens.result.encode_embedding) in its result
        self.detector = detector
        self.detect_settings: DetectSettings | None = None  # None: the detector's own settings
        self.crop_margin = crop_margin
        self.meta = self.backend.meta
        self.top_k = top_k
        self.taxonomy = load_taxonomy()
        cat_values = self.meta.head("category").values
        self._cat_type_index = np.array([self.taxonomy.object_type_index(self.taxonomy.object_type_of(c))
                                         for c in cat_values])
        self.colour_model = self._colour_model(colour_model)
        self.calibration, self._calibration_source = self._calibration(weights, calibration)
        self.precision = precision
        self.keep_uncertain = keep_uncertain
        self._calibrate_detector = calibration is not None
        self._detector_calibrations: dict[int, Calibration | None] = {}
        self.detection_precision = detection_precision
        self.street_priors = self._street_priors(weights, street_priors)

    @property
    def precision(self) -> float | None:
        """The operating point's target precision (None: no abstention)."""
        return self._precision

    @precision.setter
    def precision(self, value: float | None) -> None:
        self._precision = value
        #: field → calibrated-score threshold below which it is emitted as unsure (None: no operating point)
        self.thresholds: dict[str, float] | None = (
            None if value is None or self.calibration is None or not self.calibration.operating
            else self.calibration.thresholds(value))

    def detector_calibration(self) -> Calibration | None:
        """The calibration sidecar of this tagger's detector (None: no detector, no sidecar, or ``calibration=None``)."""
        if self.detector is None or not self._calibrate_detector:
            return None
        key = id(self.detector)
        if key not in self._detector_calibrations:
            path = getattr(self.detector, "path", None)
            self._detector_calibrations[key] = Calibration.for_weights(path) if path is not None else None
        return self._detector_calibrations[key]

    def _calibrated_detections(self, garments: Garments) -> Garments:
        """Detections with calibrated scores, those below the detection operating point dropped."""
        cal = self.detector_calibration()
        if cal is None or not len(garments) or "garment" not in cal.heads:
            return garments
        garments.confidence = np.clip(cal.heads["garment"].apply(garments.confidence[:, None])[:, 0], 0.0, 1.0
                                      ).astype(np.float64)
        if self.detection_precision is not None and "detection" in cal.operating:
            threshold = cal.operating["detection"].threshold_for(self.detection_precision)
            garments = garments.select(garments.confidence >= threshold)
        return garments

    def _calibration(self, weights: str | Path | None, calibration: Calibration | str | Path | None
                     ) -> tuple[Calibration | None, str]:
        """The calibration applied to the backend's outputs and how ``model`` names it."""
        if calibration is None:
            return None, "none (uncalibrated)"
        if calibration == DEFAULT_CALIBRATION:
            path = calibration_path(Path(weights) if weights else default_weights_path())
            if not path.is_file():
                log.info("no calibration at %s: scores are uncalibrated", path)
                return None, "none (uncalibrated)"
            calibration = path
        if isinstance(calibration, str | Path):
            source = Path(calibration).name
            calibration = Calibration.load(calibration)
        elif isinstance(calibration, Calibration):
            source = "given"
        else:
            raise TypeError(f"calibration: expected a Calibration, a path, 'default' or None, "
                            f"got {type(calibration).__name__}")
        calibration.check_heads(self.meta.heads)
        return calibration, source

    def _street_priors(self, weights: str | Path | None, priors: PriorShift | str | Path | None
                       ) -> PriorShift | None:
        """The prior-shift correction of detected (street) crops: ``"default"`` = the weights' sidecar when there
        is one, a path or a :class:`PriorShift`, or None (off)."""
        if priors is None:
            return None
        if priors == DEFAULT_CALIBRATION:
            loaded = PriorShift.for_weights(Path(weights) if weights else default_weights_path())
        elif isinstance(priors, str | Path):
            loaded = PriorShift.load(priors)
        elif isinstance(priors, PriorShift):
            loaded = priors
        else:
            raise TypeError(f"street_priors: expected a PriorShift, a path, 'default' or None, got {type(priors).__name__}")
        if loaded is not None:
            loaded.check_heads(self.meta.heads)
        return loaded

    def _colour_model(self, colour_model: PixelColourModel | str | None) -> PixelColourModel | None:
        """The pixel colour model that joins the colour head where a garment's own pixels are known."""
        if colour_model is None or not any(h.name == "colours" for h in self.meta.heads):
            return None
        head_values = self.meta.head("colours").values
        if colour_model == DEFAULT_COLOUR_MODEL:
            model = PixelColourModel.load(default_weights_path(DEFAULT_PIXEL_COLOURS))
            return model if model.values == tuple(head_values) else None  # another colour vocabulary: head only
        if isinstance(colour_model, str | Path):
            colour_model = PixelColourModel.load(colour_model)
        if not isinstance(colour_model, PixelColourModel):
            raise TypeError(f"colour_model: expected a PixelColourModel, a path, 'default' or None, "
                            f"got {type(colour_model).__name__}")
        colour_model.check_head(head_values)
        return colour_model

    def variant(self, *, detector: GarmentDetector | None | bool = True, embed: bool | None = None,
                detect_settings: DetectSettings | None = None, precision: float | None | bool = True,
                keep_uncertain: bool | None = None) -> Tagger:
        """A tagger sharing this one's loaded models with other options: ``detector=None`` for whole-image
        tagging (``True`` keeps this one's), ``embed``, ``detect_settings`` (thresholds, rules) used
        on each call instead of the detector's own, and the operating point (``precision``: a number, None
        for none, ``True`` keeps this one's; ``keep_uncertain``). Nothing is loaded again."""
        import copy

        out = copy.copy(self)  # shares the backend and detector (thread-safe inference), own options
        if detector is not True:
            out.detector = detector  # type: ignore[assignment]
        if embed is not None:
            out.embed = embed
        if precision is not True:
            if precision is not None and not 0.0 < float(precision) <= 1.0:
                raise ValueError(f"precision: expected a number in (0, 1] or None, got {precision}")
            out.precision = precision  # type: ignore[assignment]
        if keep_uncertain is not None:
            out.keep_uncertain = keep_uncertain
        out.detect_settings = detect_settings
        return out

    @property
    def model_info(self) -> dict[str, str]:
        """The classifier; with a detector and type fusion on, also how object types were decided
        (so a resumed batch job refuses to mix fused and unfused results)."""
        info = {"name": self.meta.name, "version": self.meta.version, "backend": self.backend.name,
                "calibration": self._calibration_source}
        if self.thresholds is not None:
            info["operating_point"] = (f"precision {self.precision:g}"
                                       + (", unsure values kept" if self.keep_uncertain else ""))
        if self.detector is not None and self.type_fusion is not None:
            info["object_types"] = f"detector+classifier ({self.type_fusion})"
        if self.colour_model is not None:
            info["colours"] = f"head+pixels (w={self.colour_model.head_weight})"
        if self.detector is not None and self.street_priors is not None:
            info["street_priors"] = ", ".join(self.street_priors.heads)
        return info

    def whole_image_pixels(self, rgb: np.ndarray) -> GarmentPixels:
        """A whole photo's colour pixels: with the pixel colour model, the garment's own pixels when it lies
        on a plain backdrop (:func:`~fashionlens.colours.naming.whole_image_pixels`); without it (``colour_model=None``)
        the central region, as before the model existed — no backdrop search, the fastest path."""
        if self.colour_model is None:
            return GarmentPixels(garment_pixels(rgb), False)
        return whole_image_pixels(rgb)

    @property
    def input_size(self) -> int:
        return self.meta.input_size

    def predict(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Head probabilities for ``H×W×3`` uint8 images (any size), calibrated when the tagger has a calibration."""
        if not images:
            return {h.name: np.zeros((0, h.num_outputs), np.float32) for h in self.meta.heads}
        batch = np.stack([preprocess(im, self.meta) for im in images])
        return self._run(batch)

    def _run(self, batch: np.ndarray, street: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Backend → (street priors on the rows flagged in ``street``) → calibration."""
        probs = self.backend.run(batch, embed=True) if self.embed else self.backend.run(batch)
        if street is not None and self.street_priors is not None and street.any():
            moved = self.street_priors.apply(probs)
            probs = {k: (np.where(street[:, None], moved[k], v) if k in self.street_priors.heads else v)
                     for k, v in probs.items()}
        if self.calibration is None:
            return probs
        # type fusion's thresholds were chosen on the uncalibrated category probabilities: it keeps them
        return {**self.calibration.apply(probs), UNCALIBRATED_CATEGORY: probs["category"]}

    def _unsure(self, field: str, score: float) -> bool:
        """Whether a field's value with this calibrated score is below the operating point."""
        if self.thresholds is None or field not in self.thresholds:
            return False
        return score < self.thresholds[field]

    def _single(self, field: str, values: Sequence[str], p: np.ndarray, j: int) -> Label:
        """Value ``j`` of a single-valued field as emitted: sure, or unsure with the top candidates."""
        score = round(float(p[j]), 4)
        if not self._unsure(field, float(p[j])):
            return Label(values[j], score)
        top = tuple(Label(values[k], round(float(p[k]), 4)) for k in np.argsort(-p)[:UNSURE_CANDIDATES])
        return Label(values[j] if self.keep_uncertain else None, score, uncertain=True, candidates=top)

    def object_type_probs(self, category_probs: np.ndarray) -> np.ndarray:
        """``(..., C)`` category probabilities → ``(..., T)`` object-type probabilities (summed per type)."""
        category_probs = np.asarray(category_probs, dtype=np.float64)
        out = np.zeros((*category_probs.shape[:-1], len(self.taxonomy.object_types)))
        np.add.at(np.moveaxis(out, -1, 0), self._cat_type_index, np.moveaxis(category_probs, -1, 0))
        return out

    @staticmethod
    def fusion_category(probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The category probabilities type fusion reads from :meth:`predict`'s output: the uncalibrated ones
        (its thresholds were chosen on them), the only ones when the tagger has no calibration."""
        return probs.get(UNCALIBRATED_CATEGORY, probs["category"])

    def fuse_object_type(self, detected: str, category_probs: np.ndarray, share: float) -> str:
        """The object type of a detected garment whose box covers ``share`` of the photo: the
        detector's, unless ``type_fusion`` lets the classifier's type on the crop replace it."""
        if self.type_fusion is None:
            return detected
        types = self.taxonomy.object_types
        t = self.type_fusion.choose(self.taxonomy.object_type_index(detected),
                                    self.object_type_probs(category_probs), share)
        return types[t]

    def _attributes(self, probs: dict[str, np.ndarray], i: int, object_type: str, pixels: GarmentPixels
                    ) -> Attributes:
        attrs: Attributes = {}
        for h in self.meta.heads:
            if h.name == "category":
                continue
            allowed = _ATTRIBUTE_OBJECT_TYPES.get(h.name)
            if allowed and object_type not in allowed:
                continue
            p = probs[h.name][i]
            if h.kind == "single":
                attrs[h.name] = self._single(h.name, h.values, p, int(p.argmax()))
                continue
            thr = self.meta.thresholds.get(h.name, 0.5)
            if h.name == "colours" and self.colour_model is not None and pixels.masked and len(pixels.pixels):
                pixel_p = self.colour_model.predict_proba(colour_features(pixels.pixels))
                p, thr = self.colour_model.combine(p, pixel_p, thr)
            chosen = [j for j in np.argsort(-p) if p[j] >= thr] or [int(p.argmax())]
            # listed: the sure values; none sure → [] marked uncertain (keep_uncertain: the chosen, marked)
            sure = [j for j in chosen if not self._unsure(h.name, float(p[j]))]
            listed = chosen if self.keep_uncertain else sure
            names = [h.values[j] for j in listed]
            unsure = {h.values[j] for j in listed if j not in sure}
            if h.name == "colours":
                # shares on the garment's own pixels; a colour the pixels do not show is left out (no share 0)
                values: list[Any] = colour_labels(pixels.pixels, names,
                                                  {n: float(p[h.values.index(n)]) for n in names}, unsure=unsure)
            else:
                values = [Label(n, round(float(p[h.values.index(n)]), 4), uncertain=n in unsure) for n in names]
            all_unsure = not sure or not any(not getattr(v, "uncertain", False) for v in values)
            attrs[h.name] = LabelList(values, uncertain=True) if all_unsure else values
        return attrs

    def _classify(self, probs: dict[str, np.ndarray], i: int, pixels: GarmentPixels, object_type: str | None
                  ) -> tuple[str, float | None, Label, list[Label], Attributes]:
        """Crop ``i``'s object type (the given one, else the category head's probabilities summed per
        type, with that type's probability as score), category (the best one *of that type*), top
        categories and attributes."""
        cat = probs["category"][i]
        score = None
        if object_type is None:
            type_p = self.object_type_probs(cat)
            t = int(type_p.argmax())
            object_type, score = self.taxonomy.object_types[t], min(1.0, float(type_p[t]))  # float32 sums
        else:
            t = self.taxonomy.object_type_index(object_type)
        cat_values = self.meta.head("category").values
        best = int(np.where(self._cat_type_index == t, cat, -1.0).argmax())
        top = [Label(cat_values[j], round(float(cat[j]), 4)) for j in np.argsort(-cat)[: self.top_k]]
        return (object_type, score, self._single("category", cat_values, cat, best), top,
                self._attributes(probs, i, object_type, pixels))

    def _whole_image_garments(self, probs: dict[str, np.ndarray], i: int, pixels: GarmentPixels,
                              width: int, height: int) -> Garments:
        """The photo as one garment, classified by crop ``i`` of ``probs``."""
        object_type, score, category, top, attributes = self._classify(probs, i, pixels, None)
        return Garments(xyxy=[[0, 0, width, height]], object_type=[object_type], confidence=[score],
                        category=[category], category_top=[top], attributes=[attributes],
                        embedding=probs[EMBEDDING_OUTPUT][i:i + 1] if EMBEDDING_OUTPUT in probs else None)

    def _model(self) -> dict[str, str]:
        model = dict(self.model_info)
        if self.detector is not None:
            model["detector"] = self.detector.meta.name
            model["detector_version"] = self.detector.meta.version
            model["detector_backend"] = self.detector.backend
            det_cal = self.detector_calibration()
            model["detector_calibration"] = (Path(self.detector.path).stem + ".calibration.json" if det_cal is not None
                                             else "none (uncalibrated)")
            if det_cal is not None and self.detection_precision is not None:
                model["detection_operating_point"] = f"precision {self.detection_precision:g}"
            if self.cross_type is not None:
                model["duplicates"] = f"one garment per region ({self.cross_type})"
        return model

    def tag(self, images: Sequence[DecodedImage], paths: Sequence[str],
            decode_ms: Sequence[float] | None = None,
            inputs: Sequence[np.ndarray] | None = None,
            pixels: Sequence[GarmentPixels] | None = None) -> list[TagResult]:
        """One :class:`~fashionlens.result.TagResult` per decoded image, in order.

        With a detector: detect → crop each garment (with a margin) → classify → colours from the
        garment's mask pixels; a photo with no detection falls back to whole-image mode
        (``mode: whole_image_fallback``). Without one, each photo is one garment (``whole_image``).
        ``inputs``: the whole images already passed through :func:`preprocess` (whole-image mode);
        ``pixels``: their :meth:`whole_image_pixels`, already found (whole-image mode; ``tag`` finds
        both in its decode threads). A batch that fails is tagged again photo by photo, so only a
        photo that fails on its own gets an ``inference_failed`` error.
        """
        if pixels is not None and len(pixels) != len(images):
            raise ValueError(f"expected one GarmentPixels per image, got {len(pixels)} for {len(images)} images")
        if len(images) != len(paths):
            raise ValueError(f"expected one path per image, got {len(images)} images and {len(paths)} paths")
        if inputs is not None and len(inputs) != len(images):
            raise ValueError(f"expected one preprocessed input per image, got {len(inputs)} for {len(images)} images")
        try:
            return self._tag(images, paths, decode_ms, inputs, pixels)
        except Exception:
            if len(images) <= 1:
                raise
        # one photo's failure must not take its neighbours down: tag each photo on its own
        log.warning("a batch of %d photos failed; tagging them one by one", len(images), exc_info=True)
        return [self._tag_one(k, images, paths, decode_ms, inputs, pixels) for k in range(len(images))]

    def tag_batch(self, images: Sequence[DecodedImage], paths: Sequence[str],
                  decode_ms: Sequence[float] | None = None,
                  inputs: Sequence[np.ndarray] | None = None,
                  pixels: Sequence[GarmentPixels] | None = None) -> list[dict[str, Any]]:
        """:meth:`tag`, as ``fashionlens/result/v2`` JSON records."""
        return [r.to_json() for r in self.tag(images, paths, decode_ms, inputs, pixels)]

    def _tag_one(self, k: int, images: Sequence[DecodedImage], paths: Sequence[str],
                 decode_ms: Sequence[float] | None, inputs: Sequence[np.ndarray] | None,
                 pixels: Sequence[GarmentPixels] | None) -> TagResult:
        """Photo ``k`` of a batch on its own; a failure becomes its ``inference_failed`` result."""
        def one(seq: Sequence[Any] | None) -> Sequence[Any] | None:
            return None if seq is None else [seq[k]]

        try:
            [result] = self._tag([images[k]], [paths[k]], one(decode_ms), one(inputs), one(pixels))
            return result
        except Exception as exc:
            log.error("inference failed for %s: %s", paths[k], exc, exc_info=log.isEnabledFor(logging.DEBUG))
            return TagResult.failed(paths[k], inference_failed(exc), model=self.model_info)

    def _tag(self, images: Sequence[DecodedImage], paths: Sequence[str], decode_ms: Sequence[float] | None,
             inputs: Sequence[np.ndarray] | None, pixels: Sequence[GarmentPixels] | None) -> list[TagResult]:
        if self.detector is not None:
            return self._tag_detected(images, paths, decode_ms)
        t0 = time.perf_counter()
        if inputs is not None:
            probs = self._run(np.stack(inputs)) if len(inputs) else self.predict([])
        else:
            probs = self.predict([im.rgb for im in images])
        infer_ms = (time.perf_counter() - t0) * 1000 / max(1, len(images))
        model = self._model()
        out = []
        for i, (im, path) in enumerate(zip(images, paths)):
            t1 = time.perf_counter()
            px = pixels[i] if pixels is not None else self.whole_image_pixels(im.rgb)
            garments = self._whole_image_garments(probs, i, px, im.width, im.height)
            timing = {"infer": round(infer_ms, 2), "post": round((time.perf_counter() - t1) * 1000, 2)}
            if decode_ms is not None:
                timing["decode"] = round(decode_ms[i], 2)
            out.append(TagResult(path=path, width=im.width, height=im.height, model=dict(model),
                                 mode="whole_image", garments=garments, timing_ms=timing))
        return out

    def _crops(self, images: Sequence[DecodedImage]
               ) -> tuple[list[np.ndarray], list[tuple[int, GarmentPixels]], list[Garments], list[float]]:
        """Detect garments in each photo and crop them: the crops, (photo, colour pixels) per crop,
        each photo's detections and detection time. A photo with no detection is one whole crop."""
        assert self.detector is not None
        crops: list[np.ndarray] = []
        jobs: list[tuple[int, GarmentPixels]] = []
        detected: list[Garments] = []
        detect_ms: list[float] = []
        for k, im in enumerate(images):
            t0 = time.perf_counter()
            garments = self._calibrated_detections(self.detector.detect(im, self.detect_settings))
            detect_ms.append((time.perf_counter() - t0) * 1000)
            detected.append(garments)
            if not len(garments):
                crops.append(im.rgb)
                jobs.append((k, self.whole_image_pixels(im.rgb)))
                continue
            # the pixel colour model joins only on plain-backdrop photos (where it was trained and measured);
            # on a street photo a mask's pixels include skin and background it has never seen
            plain = self.colour_model is not None and on_plain_backdrop(im.rgb)
            for j in garments:
                crop, px = crop_garment(im, garments.xyxy[j], None if garments.mask is None else garments.mask[j],
                                        margin=self.crop_margin, pixel_filter=None if plain else "default")
                crops.append(crop)
                jobs.append((k, px if plain else px._replace(masked=False)))
        return crops, jobs, detected, detect_ms

    def _classified(self, im: DecodedImage, garments: Garments, probs: dict[str, np.ndarray], first: int,
                    jobs: Sequence[tuple[int, GarmentPixels]]) -> Garments:
        """A photo's detections with object type fused, category and attributes from crops ``first…``."""
        types, categories, tops, attributes = [], [], [], []
        for j in garments:
            n = first + j
            fused = self.fuse_object_type(garments.object_type[j], self.fusion_category(probs)[n],
                                          box_share(garments.xyxy[j], im.width, im.height))
            object_type, _, category, top, attrs = self._classify(probs, n, jobs[n][1], fused)
            types.append(object_type)
            categories.append(category)
            tops.append(top)
            attributes.append(attrs)
        embedding = probs[EMBEDDING_OUTPUT][first:first + len(garments)] if EMBEDDING_OUTPUT in probs else None
        return Garments(xyxy=garments.xyxy, object_type=types, confidence=garments.confidence, mask=garments.mask,
                        data=garments.data, category=categories, category_top=tops, attributes=attributes,
                        embedding=embedding)

    def _tag_detected(self, images: Sequence[DecodedImage], paths: Sequence[str],
                      decode_ms: Sequence[float] | None) -> list[TagResult]:
        crops, jobs, detected, detect_ms = self._crops(images)
        t1 = time.perf_counter()
        # detected crops are street crops: the pattern head moves to street priors; whole-photo fallbacks do not
        street = np.array([len(detected[k]) > 0 for k, _ in jobs], dtype=bool)
        probs = (self._run(np.stack([preprocess(c, self.meta) for c in crops]), street=street) if crops
                 else self.predict([]))
        classify_ms = (time.perf_counter() - t1) * 1000 / max(1, len(images))
        model = self._model()
        out, first = [], 0
        for k, (im, path, garments) in enumerate(zip(images, paths, detected)):
            if len(garments):
                mode, result = "detect", self._classified(im, garments, probs, first, jobs)
                if self.cross_type is not None:  # on the final (fused) object types
                    result = self.cross_type.apply(result)
            else:
                mode = "whole_image_fallback"
                result = self._whole_image_garments(probs, first, jobs[first][1], im.width, im.height)
            first += max(1, len(garments))
            timing = {"detect": round(detect_ms[k], 2), "classify": round(classify_ms, 2)}
            if decode_ms is not None:
                timing["decode"] = round(decode_ms[k], 2)
            out.append(TagResult(path=path, width=im.width, height=im.height, model=dict(model), mode=mode,
                                 garments=result, timing_ms=timing))
        return out


def box_share(xyxy: Sequence[float], width: int, height: int) -> float:
    """The area of box ``xyxy`` over that of a ``width × height`` photo."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) / max(1, width * height)


def crop_garment(image: DecodedImage, xyxy: Sequence[float], mask: np.ndarray | None, *, margin: float = 0.1,
                 pixel_filter: Literal["default"] | None = "default") -> tuple[np.ndarray, GarmentPixels]:
    """The garment's crop of ``image.rgb`` (box in full-resolution pixels, grown by ``margin`` of its
    size on each side, clipped) and its colour pixels (mask pixels inside the box, skin, hair and background
    dropped by ``pixel_filter`` (:mod:`fashionlens.models.pixel_filter`; None: all mask pixels — what the
    pixel colour model on plain backdrops was fitted on), else the box centre)."""
    h, w = image.rgb.shape[:2]
    s = image.scale
    x0, y0, x1, y1 = (float(v) * s for v in xyxy)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    cx0, cy0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    cx1, cy1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    if cx1 <= cx0 or cy1 <= cy0:
        cx0, cy0, cx1, cy1 = 0, 0, w, h
    crop = image.rgb[cy0:cy1, cx0:cx1]
    bx0, by0, bx1, by1 = int(x0), int(y0), max(int(x0) + 1, int(np.ceil(x1))), max(int(y0) + 1, int(np.ceil(y1)))
    inner = image.rgb[by0:by1, bx0:bx1]
    if mask is not None and inner.size:
        if s != 1.0:
            m = mask[int(by0 / s):int(by1 / s), int(bx0 / s):int(bx1 / s)]
            m = np.asarray(Image.fromarray(m.astype(np.uint8)).resize((inner.shape[1], inner.shape[0]), Image.NEAREST))
        else:
            m = mask[by0:by1, bx0:bx1]
        if m.shape == inner.shape[:2] and m.any():
            return crop, GarmentPixels(garment_pixels(inner, mask=m, pixel_filter=pixel_filter), True)
    return crop, GarmentPixels(garment_pixels(inner if inner.size else crop), False)
