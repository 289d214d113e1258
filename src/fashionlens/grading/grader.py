"""``Grader``: the trained grading heads applied to an item's photos (what ``grade`` calls).

>>> grader = Grader()                                  # shipped rise-grader-lite0 + shipped classifier
>>> grader.grade_views({"front": front_rgb, "back": back_rgb})
{'type': {'id': 'Sweater', 'score': 0.91}, 'material': {'id': 'cotton', 'score': 0.55}, ...}

Only heads with trained weights answer (``grader.trained_heads``); the heads a weights file could
not be trained for are in ``grader.untrained`` with the reason. The views are embedded by the
classifier the heads were trained with (checked by name and version) — whole photos, squashed to
the classifier's input size exactly as in training; the brand/care-label photo is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fashionlens.models.grader import (
    GARMENT_VIEWS,
    GraderModel,
    classifier_info,
    fuse_views,
    load_grader,
)
from fashionlens.models.registry import DEFAULT_GRADER, default_weights_path

if TYPE_CHECKING:
    from fashionlens.runtime.backends import ClassifierBackend

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_GRADER", "Grader", "default_grader_path"]


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
                 classifier_backend: ClassifierBackend | None = None) -> None:
        """``classifier_backend``: an already loaded classifier to share (e.g. a
        :class:`~fashionlens.pipeline.Tagger`'s ``backend``) instead of loading ``classifier`` with
        ``backend`` and ``threads`` again; it is checked against the heads' classifier all the same."""
        self.weights = Path(weights) if weights else default_grader_path()
        self.model: GraderModel = load_grader(self.weights)
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

    def grade_embeddings(self, embeddings: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        """``{head: {"id", "score"}}`` from ``{role: (D,) embedding}`` of the front and/or back photo."""
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
        return {head: preds[0] for head, preds in self.model.predict(fused).items()}

    def grade_views(self, rgb_by_role: Mapping[str, np.ndarray | None]) -> dict[str, dict[str, Any]]:
        """Grades of one item from its decoded photos by role (``front``, ``back``; ``label`` is ignored):
        ``{head: {"id": value, "score": probability}}`` for the trained heads only."""
        return self.grade_embeddings(self.embed_views(rgb_by_role))
