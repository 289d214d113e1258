"""``Grader``: the trained grading heads applied to an item's photos (what ``grade`` calls).

>>> grader = Grader()                                  # shipped rise-grader-lite0 + shipped classifier
>>> grader.grade_views({"front": front_rgb, "back": back_rgb})
{'type': {'id': 'Sweater', 'score': 0.91}, 'material': {'id': 'cotton', 'score': 0.55}, ...}

Only heads with trained weights answer (``grader.trained_heads``); the heads a weights file could
not be trained for are in ``grader.untrained`` with the reason. When the weights have a calibration
sidecar (``<weights stem>.calibration.json``, fitted on the grader recipe's validation split by
``fashionlens evaluate calibration --model grader --save``), the heads' probabilities are calibrated
(temperature scaling per head, in numpy) and each head has an operating point: with ``precision``, a
grade whose calibrated score is below the threshold at which that head reached the precision on
validation is unsure — ``{"id": null, "score", "uncertain": true, "candidates": [...]}`` as in
``fashionlens/result/v2`` (``keep_uncertain``: the best guess's id instead of null). The views are embedded by the
classifier the heads were trained with (checked by name and version) — whole photos, squashed to
the classifier's input size exactly as in training; the brand/care-label photo is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fashionlens.models.calibration import Calibration
from fashionlens.models.grader import (
    GARMENT_VIEWS,
    GraderModel,
    classifier_info,
    decode_indices,
    fuse_views,
    load_grader,
)
from fashionlens.models.registry import DEFAULT_GRADER, default_weights_path

if TYPE_CHECKING:
    from fashionlens.runtime.backends import ClassifierBackend

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_GRADER", "Grader", "default_grader_path", "grade_label"]

#: candidates listed with an unsure grade (as in ``fashionlens/result/v2``)
UNSURE_CANDIDATES = 3


def grade_label(values: tuple[Any, ...], p: np.ndarray, j: int, threshold: float | None,
                keep_uncertain: bool = False) -> dict[str, Any]:
    """Grade ``j`` of one head with probabilities ``p`` (K,) as emitted: ``{"id", "score"}``, or unsure (score
    below ``threshold``) with the top candidates."""
    score = round(float(p[j]), 4)
    if threshold is None or float(p[j]) >= threshold:
        return {"id": values[j], "score": score}
    top = [{"id": values[k], "score": round(float(p[k]), 4)} for k in np.argsort(-p, kind="stable")[:UNSURE_CANDIDATES]]
    return {"id": values[j] if keep_uncertain else None, "score": score, "uncertain": True, "candidates": top}


def default_grader_path() -> Path:
    """The shipped grading heads (``weights/rise-grader-lite0.npz`` inside the package).

    A thin wrapper over :func:`fashionlens.models.registry.default_weights_path` with
    :data:`fashionlens.models.registry.DEFAULT_GRADER`.
    """
    return default_weights_path(DEFAULT_GRADER)


class Grader:
    """Load grading heads and the classifier backend once; grade items from their decoded photos."""

    def __init__(self, weights: str | Path | None = None, *, classifier: str | Path | None = None,
                 backend: str = "auto", threads: int | None = None,
                 classifier_backend: ClassifierBackend | None = None,
                 calibration: Calibration | str | Path | None = "default") -> None:
        """``classifier_backend``: an already loaded classifier to share (e.g. a
        :class:`~fashionlens.pipeline.Tagger`'s ``backend``) instead of loading ``classifier`` with
        ``backend`` and ``threads`` again; it is checked against the heads' classifier all the same.
        ``calibration``: ``"default"`` = the weights' sidecar when there is one, a path, a
        :class:`~fashionlens.models.calibration.Calibration`, or None (uncalibrated, no operating points)."""
        self.weights = Path(weights) if weights else default_grader_path()
        self.model: GraderModel = load_grader(self.weights)
        self.calibration, self.calibration_source = self._calibration(calibration)
        if classifier_backend is not None:
            if classifier is not None:
                raise ValueError("pass classifier (weights to load) or classifier_backend (loaded), not both")
            self.backend = classifier_backend
        else:
            from fashionlens.runtime.backends import create_backend

            self.backend = create_backend(classifier or default_weights_path(), backend=backend,  # type: ignore[arg-type]
                                          threads=threads)
        expect = self.model.meta.classifier
        got = classifier_info(self.backend.meta)
        if expect and (expect.get("name"), expect.get("version")) != (got["name"], got["version"]):
            raise ValueError(f"{self.weights} was trained on embeddings of classifier {expect.get('name')} "
                             f"v{expect.get('version')}, but the classifier given is {got['name']} v{got['version']}")

    def _calibration(self, calibration: Calibration | str | Path | None) -> tuple[Calibration | None, str]:
        if calibration is None:
            return None, "none (uncalibrated)"
        if isinstance(calibration, str) and calibration == "default":
            loaded = Calibration.for_weights(self.weights)
            if loaded is None:
                return None, "none (uncalibrated)"
            source = f"{self.weights.stem}.calibration.json"
        elif isinstance(calibration, str | Path):
            loaded, source = Calibration.load(calibration), Path(calibration).name
        elif isinstance(calibration, Calibration):
            loaded, source = calibration, "given"
        else:
            raise TypeError(f"calibration: expected a Calibration, a path, 'default' or None, "
                            f"got {type(calibration).__name__}")
        for name, hc in loaded.heads.items():
            spec = next((h for h in self.model.meta.heads if h.name == name), None)
            if spec is None or tuple(spec.values) != tuple(hc.values) or hc.kind != "single":
                raise ValueError(f"calibration head {name!r} does not fit the grading heads {self.weights.name} "
                                 f"(expected a single-label head with values {list(hc.values)[:4]}…)")
        return loaded, source

    def thresholds(self, precision: float | None) -> dict[str, float] | None:
        """Head → the calibrated-score threshold at which it reached ``precision`` on validation (None: no
        operating point asked for, or no calibration)."""
        if precision is None or self.calibration is None or not self.calibration.operating:
            return None
        return self.calibration.thresholds(precision)

    @property
    def trained_heads(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.model.meta.heads)

    @property
    def untrained(self) -> dict[str, str]:
        """Heads these weights have no model for, with the reason (e.g. no labels in the training data)."""
        return dict(self.model.meta.untrained)

    def embed_views(self, rgb_by_role: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """``{role: (D,) embedding}`` of the front/back photos given (``H×W×3`` uint8 RGB)."""
        from fashionlens.models.meta import EMBEDDING_OUTPUT
        from fashionlens.pipeline import preprocess

        unknown = set(rgb_by_role) - {"front", "back", "label"}
        if unknown:
            raise ValueError(f"view roles must be front, back or label, got {sorted(unknown)}")
        roles = [r for r in GARMENT_VIEWS if rgb_by_role.get(r) is not None]
        if not roles:
            raise ValueError(f"grading needs a front or back photo, got roles {sorted(rgb_by_role)}")
        batch = []
        for r in roles:
            rgb = np.asarray(rgb_by_role[r])
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise ValueError(f"{r} photo: expected an H×W×3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
            batch.append(preprocess(rgb, self.backend.meta))
        emb = self.backend.run(np.stack(batch), embed=True)[EMBEDDING_OUTPUT]
        return dict(zip(roles, emb))

    def probabilities(self, fused: np.ndarray) -> dict[str, np.ndarray]:
        """``{head: (n, K) probabilities}`` of fused embeddings, calibrated when the heads have a calibration."""
        probs = self.model.predict_proba(fused)
        return probs if self.calibration is None else self.calibration.apply(probs)

    def grade_embeddings(self, embeddings: Mapping[str, np.ndarray], *, precision: float | None = None,
                         keep_uncertain: bool = False) -> dict[str, dict[str, Any]]:
        """``{head: {"id", "score"}}`` from ``{role: (D,) embedding}`` of the front and/or back photo; with
        ``precision``, a grade below its head's operating point is unsure (see the module doc)."""
        roles = [r for r in GARMENT_VIEWS if embeddings.get(r) is not None]
        if not roles:
            raise ValueError(f"grading needs a front or back embedding, got roles {sorted(embeddings)}")
        d = self.model.meta.embedding_dim
        emb = {r: np.asarray(embeddings[r], np.float32).reshape(1, -1) if r in roles else np.zeros((1, d), np.float32)
               for r in GARMENT_VIEWS}
        for r in roles:
            if emb[r].shape[1] != d:
                raise ValueError(f"{r} embedding: expected {d} values, got {emb[r].shape[1]}")
        present = {r: np.array([r in roles]) for r in GARMENT_VIEWS}
        fused = fuse_views(emb, present, fusion=self.model.meta.fusion)
        thresholds = self.thresholds(precision) or {}
        out = {}
        for name, p in self.probabilities(fused).items():
            spec = self.model.meta.head(name)
            j = int(decode_indices(spec, p)[0])
            out[name] = grade_label(tuple(spec.values), np.asarray(p[0], np.float64), j, thresholds.get(name),
                                    keep_uncertain)
        return out

    def grade_views(self, rgb_by_role: Mapping[str, np.ndarray | None], *, precision: float | None = None,
                    keep_uncertain: bool = False) -> dict[str, dict[str, Any]]:
        """Grades of one item from its decoded photos by role (``front``, ``back``; ``label`` is ignored):
        ``{head: {"id": value, "score": probability}}`` for the trained heads only (unsure ones below their
        operating point with ``precision``)."""
        return self.grade_embeddings(self.embed_views(rgb_by_role), precision=precision,
                                     keep_uncertain=keep_uncertain)
