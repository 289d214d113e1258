"""Models and data loaded once per worker process, shared by every request of that worker.

:class:`ServiceModels` holds the classifier (one :class:`~fashionlens.pipeline.Tagger`), one
detector (a request's thresholds and rules are passed with each call, so no variants are loaded), the
item grader, the garment searcher (when an index is configured) and the trends datasets. Anything
passed to the constructor is used as given (tests inject small models); :meth:`load` builds the
rest from :class:`~fashionlens.service.settings.ServiceSettings` and marks the worker ready.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from fashionlens.detection.detector import DetectSettings, GarmentDetector
from fashionlens.pipeline import Tagger, TaggerConfig
from fashionlens.service.problems import ApiProblem
from fashionlens.service.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = ["ServiceModels"]

class ServiceModels:
    """Everything a worker loads once. Thread-safe: requests run in worker threads."""

    def __init__(self, settings: ServiceSettings, *, tagger: Tagger | None = None,
                 detector: GarmentDetector | None = None, grader: Any | None = None, searcher: Any | None = None,
                 trends: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.tagger = tagger
        self.grader = grader
        self.searcher = searcher
        self.trends: dict[str, Any] = dict(trends or {})
        self._detector = detector  # one detector; thresholds and rules come with each request
        self._lock = threading.RLock()
        self.load_seconds: dict[str, float] = {}
        self.grader_missing: list[str] = []  # grading parts left out (shipped weights missing)
        self.ready = False
        self.error: str | None = None

    # ---------------------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Load every configured model and dataset (idempotent); errors leave the worker not ready."""
        with self._lock:
            if self.ready:
                return
            try:
                self._timed("classifier", self._load_tagger)
                self._timed("detector", self.detector)
                if self.grader is None:
                    self._timed("grader", self._load_grader)
                if self.searcher is None and self.settings.index_dir is not None:
                    self._timed("search_index", self._load_searcher)
                for name in self.settings.trends:
                    if name not in self.trends:
                        self._timed(f"trends:{name}", lambda n=name: self._load_trends(n))
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("loading the service models failed")
                raise
            self.error = None
            self.ready = True

    def _timed(self, name: str, fn: Any) -> None:
        t0 = time.perf_counter()
        fn()
        self.load_seconds[name] = round(time.perf_counter() - t0, 3)

    def _load_tagger(self) -> None:
        if self.tagger is None:
            self.tagger = TaggerConfig(weights=self.settings.classifier_weights, threads=self.settings.threads,
                                       whole_image=True).build()

    def _load_grader(self) -> None:
        """``ItemGrader`` on the loaded classifier + default detector; each optional part (damage head,
        label OCR, grading heads) whose shipped weights are missing is left out and reported."""
        from fashionlens.grading.grade import ItemGrader
        from fashionlens.grading.routing import load_rules

        threads = self.settings.threads

        def damage() -> Any:
            from fashionlens.grading.damage import DamageFinder

            return DamageFinder(threads=threads)

        def labels() -> Any:
            from fashionlens.grading.care_label import LabelReader

            return LabelReader(num_threads=threads)

        def grades() -> Any:
            from fashionlens.grading.grader import Grader

            return Grader(threads=threads)

        parts: dict[str, Any] = {}
        for name, build in (("damage", damage), ("labels", labels), ("grader", grades)):
            try:
                parts[name] = build()
            except FileNotFoundError as exc:
                parts[name] = None
                self.grader_missing.append(name)
                log.warning("grading without %s: %s", name, exc)
        tagger = self.tagger_for(whole_image=False)
        self.grader = ItemGrader(tagger=tagger, rules=load_rules(), **parts)

    def _load_searcher(self) -> None:
        from fashionlens.search.catalogue import GarmentSearcher

        self.searcher = GarmentSearcher(self.settings.index_dir)  # type: ignore[arg-type]

    def _load_trends(self, name: str) -> None:
        from fashionlens.trends.inputs import load_inputs

        self.trends[name] = load_inputs([Path(p) for p in self.settings.trends[name]])

    def close(self) -> None:
        if self.searcher is not None and hasattr(self.searcher, "close"):
            self.searcher.close()

    # ---------------------------------------------------------------------------------------- access

    def status(self) -> dict[str, Any]:
        return {"ready": self.ready, "error": self.error, "classifier": None if self.tagger is None else self.tagger.model_info,
                "detectors_loaded": int(self._detector is not None), "grader": self.grader is not None,
                "grader_missing": list(self.grader_missing),
                "search_index": self.searcher is not None, "trends": sorted(self.trends),
                "load_seconds": dict(self.load_seconds)}

    def detector(self) -> GarmentDetector:
        """The detector (loaded on first use); run-time settings are passed per call, never baked in."""
        with self._lock:
            if self._detector is None:
                self._detector = GarmentDetector(self.settings.detector_weights, threads=self.settings.threads)
            return self._detector

    def tagger_for(self, *, whole_image: bool, detect: DetectSettings | None = None, embed: bool = False) -> Tagger:
        """A tagger sharing the loaded classifier: whole-image, or with the detector for ``detect``."""
        if self.tagger is None:
            raise ApiProblem("not_ready", "expected the classifier to be loaded; the worker is still starting")
        detector = None if whole_image else self.detector()
        return self.tagger.variant(detector=detector, embed=embed,
                                   detect_settings=None if whole_image or detect == DetectSettings() else detect)
