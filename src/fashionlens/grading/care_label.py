"""Read the brand/care-label photo of an item: offline OCR → text lines, fibre composition, brand.

The OCR is RapidOCR (``rapidocr-onnxruntime``): PP-OCRv4 text detection and recognition as ONNX
models shipped inside the wheel, run on ONNX Runtime on the CPU; nothing is downloaded. The photo is
downscaled to ``max_side`` pixels on its longer side first (the detector's cost grows with the pixel
count; on generated phone-sized label photos 640, 800 and 960 px all read every brand and main
fibre, at about 0.47, 0.66 and 0.83 s per photo on one core — see ``benchmarks/bench_care_label.py``).

From the lines:

* **composition** — the lines that hold a percentage, a section header (``Shell:``, ``Lining``,
  ``Foder`` …) or only fibre names are joined (with spaces) in reading order and parsed with
  :func:`fashionlens.taxonomy.composition.composition_candidates`; of the candidate compositions
  (one per section and per run of percentages adding up to 100, e.g. one per language) the best is
  the first of: an explicit shell section, then an unlabelled one, then any other section
  (lining …); within that, complete ones (named + unnamed = 100 ± 1) before incomplete ones, then
  label order.
* **brand** — a line is *excluded* when it is composition text, a size, a care instruction, a
  country of origin, a web address, a code/number (more digits than letters) or has fewer than two
  letters. A non-excluded line that matches a brand of the shipped list
  (``grading/data/brands.txt``; case, accents, spaces and punctuation ignored, one typo allowed for
  names of 6+ letters) gives ``brand_source="list"`` and the list's spelling. Otherwise the most
  prominent non-excluded short line (≤ 4 words, ≤ 30 characters; prominence = box height × OCR
  score) is reported as it was read, with ``brand_source="heuristic"``: a guess (a slogan or a
  designer's line in large print wins too), which is why the source is reported.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
from PIL import Image

from fashionlens.taxonomy.composition import (
    Composition,
    composition_candidates,
    fibre_of,
)

log = logging.getLogger(__name__)

BrandSource = Literal["list", "heuristic"]

DEFAULT_MAX_SIDE = 800
"""Longer side (pixels) the label photo is downscaled to before OCR."""


@dataclass(frozen=True)
class LabelLine:
    """One OCR text line: ``box`` is its 4 corners ``(x, y)`` in input-image pixels, clockwise from top-left."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    @property
    def height(self) -> float:
        """Mean length of the box's left and right edges (the text height of a horizontal line)."""
        if len(self.box) != 4:
            return 0.0
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.box
        return float(np.hypot(x3 - x0, y3 - y0) + np.hypot(x2 - x1, y2 - y1)) / 2.0

    @property
    def prominence(self) -> float:
        return self.height * self.score


@dataclass(frozen=True)
class LabelReading:
    """What a label photo says. An empty reading (no lines) is a valid result, not an error."""

    lines: list[LabelLine] = field(default_factory=list)
    composition: Composition | None = None
    brand: str | None = None
    brand_source: BrandSource | None = None
    timing_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def item_fields(self) -> dict[str, Any]:
        """The ``composition``, ``brand`` and ``label_text`` keys of a ``fashionlens/item/v1`` record."""
        comp = None
        if self.composition is not None:
            comp = {"text": self.composition.text,
                    "fibres": [{"fibre": f, "percent": p} for f, p in self.composition.fibres],
                    "main_fibre": self.composition.main_fibre}
        return {"composition": comp, "brand": self.brand, "label_text": self.texts}


# ---------------------------------------------------------------------------------------------- brands

def _fold(text: str) -> str:
    """Case-folded, NFKC, without accents: ``"Fjällräven"`` → ``"fjallraven"``."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("ø", "o").replace("æ", "ae")


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", _fold(text))


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[\W_]+", _fold(text)) if t]


@lru_cache(maxsize=1)
def load_brands() -> tuple[str, ...]:
    """The shipped brand list (``grading/data/brands.txt``), in file order, without duplicates."""
    text = resources.files("fashionlens.grading").joinpath("data/brands.txt").read_text("utf-8")
    seen: set[str] = set()
    out: list[str] = []
    for line in text.splitlines():
        name = line.strip()
        if name and not name.startswith("#") and _compact(name) not in seen:
            seen.add(_compact(name))
            out.append(name)
    return tuple(out)


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one insertion, deletion or substitution."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if len(a) == len(b) else a[i:] == b[i + 1:]


@lru_cache(maxsize=8)
def _brand_keys(brands: tuple[str, ...]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``(brand, compact, tokens)`` of each brand, longest compact form first."""
    keys = [(b, _compact(b), tuple(_tokens(b))) for b in brands]
    return tuple(sorted((k for k in keys if k[1]), key=lambda k: -len(k[1])))


def match_brand(text: str, brands: Sequence[str]) -> str | None:
    """The brand of ``brands`` a label line names, or None; the longest match wins, exact before fuzzy.

    A line names a brand when its letters and digits equal the brand's (``"JACK&JONES"``), when it
    has at most 4 words and the brand's words appear in it in order (``"ZARA WOMAN"``), when it is
    one word that starts with a brand of 4+ characters (OCR drops spaces: ``"ZARAWOMAN"``), or when
    it is one typo away from a brand of 6+ characters.
    """
    compact = _compact(text)
    if not compact:
        return None
    tokens = _tokens(text)
    for brand, b, bt in _brand_keys(tuple(brands)):
        if compact == b:
            return brand
        if len(tokens) <= 4 and b in compact:  # cheap pre-check for the word match below
            n = len(bt)
            if any(tuple(tokens[i:i + n]) == bt for i in range(len(tokens) - n + 1)):
                return brand
        if len(tokens) == 1 and len(b) >= 4 and compact.startswith(b):
            return brand
    for brand, b, _ in _brand_keys(tuple(brands)):  # only then one typo
        if len(b) >= 6 and abs(len(compact) - len(b)) <= 1 and _one_edit(compact, b):
            return brand
    return None


_SIZE = re.compile(r"^(?:[2-6]?x{0,3}[sl]|xs|m|onesize|os|\d{1,3}(?:[/-]\d{1,3}[a-z]?)?|[wl]\d{2}(?:[wl]\d{2})?)$")
_SIZE_WORDS = {"size", "storlek", "strl", "taille", "talla", "taglia", "grosse", "gr", "eur", "us", "uk", "fr", "it"}
_CARE_WORDS = (
    "wash", "wasch", "tvatt", "laver", "lavage", "lavar", "lavare", "bleach", "blek", "iron", "stryk",
    "bugel", "repass", "plancha", "dry", "tork", "trockn", "sech", "clean", "tumble", "celsius", "donot", "inside",
    "similar", "colours", "colors", "farger", "machine", "maskin", "gentle", "delicate", "skonsam", "hand", "chlor",
    "nettoy", "reinig", "separately", "separat", "pflege", "entretien",
)
_ORIGIN_WORDS = (
    "madein", "tillverkad", "hergestellt", "fabrique", "hechoen", "fattoin", "fabricado", "productof",
    "origin", "china", "bangladesh", "turkey", "turkiye", "india", "portugal", "italy", "italia", "vietnam",
    "cambodia", "pakistan", "indonesia", "myanmar", "srilanka", "romania", "bulgaria", "morocco", "tunisia", "egypt",
    "lithuania", "poland", "estonia", "latvia", "ukraine", "macedonia", "moldova", "hongkong", "taiwan", "thailand",
    "malaysia", "philippines", "mauritius", "madagascar", "ethiopia", "kenya", "jordan", "mexico",
)
_FIBRE_LINE = re.compile(r"[^\W\d_]+")


def _excluded(text: str) -> str | None:
    """Why a line cannot be the brand (``"composition"``, ``"size"`` …), or None when it can."""
    folded = _fold(text).strip()
    compact = _compact(text)
    letters = sum(c.isalpha() for c in compact)
    digits = sum(c.isdigit() for c in compact)
    if "%" in folded:
        return "composition"
    words = _FIBRE_LINE.findall(folded)
    if words and all(fibre_of(w) is not None or len(w) <= 2 for w in words) \
            and any(fibre_of(w) is not None for w in words):
        return "composition"
    if letters < 2:
        return "number"
    if "www" in compact or ".com" in folded or "http" in folded or "@" in folded:
        return "web"
    if "°" in folded or any(w in compact for w in _CARE_WORDS):
        return "care"
    if any(w in compact for w in _ORIGIN_WORDS):
        return "origin"
    tokens = _tokens(text)
    if _SIZE.match(compact) or (tokens and tokens[0] in _SIZE_WORDS):
        return "size"
    if digits > letters or re.match(r"^(rn|ca|art|style|lot|nr|no)\W*\d", folded):
        return "number"
    return None


def brand_from_lines(lines: Sequence[LabelLine], *, brands: Sequence[str] | None = None
                     ) -> tuple[str | None, BrandSource | None]:
    """``(brand, source)`` by the rule in the module docstring; ``(None, None)`` when no line qualifies."""
    brand_list = load_brands() if brands is None else brands
    reasons = [_excluded(ln.text) for ln in lines]
    candidates = [ln for ln, why in zip(lines, reasons) if why is None]
    matched: list[tuple[str, LabelLine]] = []
    for ln, why in zip(lines, reasons):
        brand = match_brand(ln.text, brand_list)
        # an excluded line counts only when it *is* a brand ("UNITED COLORS OF BENETTON"), never when it
        # merely contains one ("DRY CLEAN ONLY")
        if brand is not None and (why is None or (why in ("care", "origin") and _compact(ln.text) == _compact(brand))):
            matched.append((brand, ln))
    if matched:
        brand, _ = max(matched, key=lambda bl: (len(_compact(bl[0])), bl[1].prominence))
        return brand, "list"
    short = [ln for ln in candidates if len(ln.text.split()) <= 4 and len(ln.text.strip()) <= 30]
    if not short:
        return None, None
    best = max(short, key=lambda ln: ln.prominence)
    return best.text.strip(), "heuristic"


# ----------------------------------------------------------------------------------------- composition

_PCT_LINE = re.compile(r"[0-9OoIl]\s*[%％]|\d\s*&")
_SECTION_LINE = re.compile(
    r"^\W*(shell|outer|outer fabric|exterior|body|main fabric|self|yttertyg|obermaterial|oberstoff|"
    r"lining|foder|futter|doublure|forro|fodera|fodring|padding|filling|fyllning|füllung|vaddering|trim|"
    r"interior|inner|sleeves?|hood|rib|mudd)\W*$", re.IGNORECASE)


def _is_composition_line(text: str) -> bool:
    if _PCT_LINE.search(text) or _SECTION_LINE.match(unicodedata.normalize("NFKC", text)):
        return True
    words = [w for w in _FIBRE_LINE.findall(unicodedata.normalize("NFKC", text)) if len(w) > 2]
    return bool(words) and all(fibre_of(w) is not None for w in words)


def composition_from_lines(texts: Sequence[str]) -> Composition | None:
    """The label's composition from its OCR lines (reading order), by the rule in the module docstring."""
    comp_lines = [t.strip() for t in texts if t.strip() and _is_composition_line(t)]
    if not comp_lines:
        return None
    joined = " ".join(comp_lines)
    candidates = composition_candidates(joined)
    if not candidates:
        return None

    def rank(ic: tuple[int, Composition]) -> tuple[int, int, int]:
        i, c = ic
        klass = 0 if (c.section and c.is_shell) else 1 if c.section == "" else 2
        return klass, 0 if abs(c.total_percent - 100.0) <= 1.0 else 1, i

    return min(enumerate(candidates), key=rank)[1]


# ------------------------------------------------------------------------------------------------ OCR

def _as_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        # ValueError like every other bad image, so that callers catch one type for "not an image"
        raise ValueError(f"expected an H×W×3 uint8 RGB array; got {type(rgb).__name__}")  # noqa: TRY004
    if rgb.size == 0:
        raise ValueError(f"expected a non-empty image; got an array of shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image; got dtype {rgb.dtype}")
    if rgb.ndim == 2:
        return np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB (or H×W grey) image; got shape {rgb.shape}")
    return rgb


class _ClsRecorder:
    """Wraps RapidOCR's angle classifier to remember, per thread, which crops it turned by 180°
    (RapidOCR does not return that), so that an upside-down label's lines can be put back in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.local = threading.local()

    def __call__(self, img_list: Any) -> Any:
        out = self.inner(img_list)
        self.local.labels = [str(label) for label, _ in out[1]]
        return out

    def take_flipped_share(self) -> float:
        labels = getattr(self.local, "labels", None) or []
        self.local.labels = []
        return sum(label == "180" for label in labels) / len(labels) if labels else 0.0


def _ocr_model_paths() -> dict[str, str]:
    """RapidOCR's shipped models (``det_model_path``, ``cls_model_path``, ``rec_model_path``) as their cached
    optimised graphs (:func:`fashionlens.runtime.session_cache.optimised_model_path`): the same OCR, whose
    three sessions start in about a third of the time."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    from fashionlens.runtime.session_cache import optimised_model_path

    config = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    return {f"{part.lower()}_model_path": str(optimised_model_path(config[part]["model_path"]))
            for part in ("Det", "Cls", "Rec")}


class LabelReader:
    """Reads label photos; the OCR engine is loaded once, on the first :meth:`read` (or in the background
    from :meth:`preload`).

    Args:
        max_side: the photo is downscaled (never upscaled) so that its longer side is at most this;
            640 is faster when the label fills the frame, 960–1280 reads smaller print.
        det_min_side: the text detector upscales images whose shorter side is below this (RapidOCR's
            ``det_limit_side_len`` with ``limit_type="min"``); the default 0 keeps the size.
        use_angle_cls: run the 0°/180° text-direction classifier: without it a label photographed
            upside down reads as garbage; it costs ~1–2 ms per line.
        num_threads: ONNX Runtime intra-op threads per model (1 suits a machine of 1–2 cores
            serving several requests; 2 is ~1.5× faster on an idle 2-core machine).
        min_score: lines recognised with a lower confidence are dropped.
        brands: brand names to match (default: the shipped list, :func:`load_brands`).
    """

    def __init__(self, *, max_side: int = DEFAULT_MAX_SIDE, det_min_side: int = 0, use_angle_cls: bool = True,
                 num_threads: int = 1, min_score: float = 0.5, brands: Iterable[str] | None = None) -> None:
        if max_side < 32:
            raise ValueError(f"expected max_side >= 32; got {max_side}")
        if det_min_side < 0:
            raise ValueError(f"expected det_min_side >= 0; got {det_min_side}")
        if num_threads < 1:
            raise ValueError(f"expected num_threads >= 1; got {num_threads}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"expected min_score in [0, 1]; got {min_score}")
        self.max_side = int(max_side)
        self.det_min_side = int(det_min_side)
        self.use_angle_cls = bool(use_angle_cls)
        self.num_threads = int(num_threads)
        self.min_score = float(min_score)
        self.brands: tuple[str, ...] = load_brands() if brands is None else tuple(brands)
        self._engine: Any = None
        self._lock = threading.Lock()

    def _get_engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                t0 = time.perf_counter()
                self._engine = RapidOCR(
                    intra_op_num_threads=self.num_threads, inter_op_num_threads=1, text_score=self.min_score,
                    use_cls=self.use_angle_cls, det_limit_type="min", det_limit_side_len=max(self.det_min_side, 1),
                    print_verbose=False, max_side_len=max(self.max_side, 2000), min_side_len=30,
                    **_ocr_model_paths(),
                )
                if self.use_angle_cls:
                    self._engine.text_cls = _ClsRecorder(self._engine.text_cls)
                log.debug("RapidOCR loaded in %.0f ms", (time.perf_counter() - t0) * 1000)
            return self._engine

    def preload(self) -> None:
        """Start loading the OCR engine in a background thread and return at once; :meth:`read` then waits
        only for what is left of the load. For a caller with other work to do meanwhile (``grade`` loads
        the garment models); a load that fails here fails again, with its error, in :meth:`read`."""
        if self._engine is None:
            threading.Thread(target=self._load_quietly, name="label-ocr-load", daemon=True).start()

    def _load_quietly(self) -> None:
        try:
            self._get_engine()
        except Exception as exc:  # noqa: BLE001 - reported by the read that needs the engine
            log.debug("OCR engine not preloaded: %s", exc)

    def _downscale(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale >= 1.0:
            return rgb, 1.0
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        return small, size[0] / w

    def ocr(self, rgb: np.ndarray) -> tuple[list[LabelLine], dict[str, float]]:
        """Just the OCR: text lines in reading order (top to bottom, left to right; on a label photographed
        upside down, the label's order when the angle classifier is on) and stage times in ms."""
        rgb = _as_rgb(rgb)
        engine = self._get_engine()
        t0 = time.perf_counter()
        small, scale = self._downscale(rgb)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        t1 = time.perf_counter()
        result, elapsed = engine(bgr, use_det=True, use_cls=self.use_angle_cls, use_rec=True)
        stage = {"resize": (t1 - t0) * 1000.0}
        if elapsed:
            stage.update({k: float(v) * 1000.0 for k, v in zip(("det", "cls", "rec"), elapsed)})
        lines: list[LabelLine] = []
        for box, text, score in result or []:
            text = str(text).strip()
            if not text:
                continue
            corners = tuple((float(x) / scale, float(y) / scale) for x, y in box)
            lines.append(LabelLine(text=text, score=float(score), box=corners))
        recorder = getattr(engine, "text_cls", None)
        if isinstance(recorder, _ClsRecorder) and recorder.take_flipped_share() > 0.5:
            lines.reverse()  # an upside-down photo: bottom-to-top in the image is top-to-bottom on the label
        return lines, stage

    def read(self, rgb: np.ndarray) -> LabelReading:
        """OCR a label photo (``H×W×3`` uint8 RGB) and parse composition and brand.

        Raises:
            ValueError: ``rgb`` is not a non-empty uint8 RGB/grey image array.
        """
        rgb = _as_rgb(rgb)
        self._get_engine()  # the one-off model load is not part of timing_ms
        t0 = time.perf_counter()
        lines, stage = self.ocr(rgb)
        texts = [ln.text for ln in lines]
        composition = composition_from_lines(texts)
        brand, source = brand_from_lines(lines, brands=self.brands)
        total = (time.perf_counter() - t0) * 1000.0
        log.debug("label: %d lines, composition %s, brand %r (%s), %.0f ms", len(lines),
                  composition.fibres if composition else None, brand, source, total)
        return LabelReading(lines=lines, composition=composition, brand=brand, brand_source=source,
                            timing_ms=total, stage_ms=stage)
