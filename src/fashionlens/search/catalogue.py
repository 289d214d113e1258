"""Garment catalogues: photos or tag results → a :class:`GarmentIndex`, and image/text queries against it.

What one index vector holds
    The garment embedding ``e`` (1280-d, from the classifier, see :func:`fashionlens.result.encode_embedding`) and,
    when alignment heads are available, its projection ``a = image_head(e)`` into the text–image
    space (D-d), concatenated and scaled so the vector is unit length: ``v = [e, a] / sqrt(2)``.
    A photo query is ``[e_q, 0]`` and a text query ``[0, text_head(minilm(text))]``, so one FAISS
    index answers both: the inner product is ``e·e_q / sqrt(2)`` or ``a·t / sqrt(2)`` — the cosine in
    that space, up to the constant (hits report the cosine itself). Without alignment heads the
    vector is ``e`` alone and only photo queries work.

Inputs
    Image files, folders and glob patterns are tagged here (:class:`~fashionlens.pipeline.Tagger`
    with ``embed=True``: detect → crop → classify, or whole images); ``.jsonl`` files are read as
    ``fashionlens tag --embed`` results. Each garment becomes one vector with metadata: path, box
    (detected garments), category, object type and the attributes ``pattern``, ``colours``,
    ``material``, ``sleeve``, ``neckline``, ``fit`` (ids), ``garment`` (its number in the photo) and
    ``score`` — the filter fields of :meth:`GarmentIndex.search`.

Failed inputs
    A photo that cannot be tagged (missing, not an image, …), an error record in a results file, and
    a results file that cannot be read are *failed inputs*: each is reported (``on_failure``, default:
    logged) with its path, error type and message, and left out; the other inputs of the same call
    are still indexed. The summary counts them under ``errors``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as fields_of
from typing import TYPE_CHECKING, Any

import numpy as np

from fashionlens.result import Garments, TagResult
from fashionlens.search._store import GarmentMeta
from fashionlens.models.alignment import AlignmentHeads, load_alignment
from fashionlens.search.index import GarmentIndex, IndexKind, IvfStorage, SearchHit
from fashionlens.search.query import DEFAULT_WEIGHTS, MatchWeights, ParsedQuery, parse_query

if TYPE_CHECKING:
    from fashionlens.pipeline import TaggerConfig
    from typing_extensions import Self

log = logging.getLogger(__name__)

__all__ = ["AUTO_GARMENT_MIN_SCORE", "INDEX_LAYOUT", "EmbeddingSpace", "FailedInput", "GarmentSearcher", "TagOptions",
           "TextHit", "TextSearch", "add_to_index", "build_index", "choose_garment", "garment_query",
           "garments_from_records", "read_result_records", "remove_from_index", "rerank_hits", "stored_embeddings",
           "text_pool_size"]

INDEX_LAYOUT = "fashionlens/garment-index/v1"
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class TagOptions:
    """How photo inputs are tagged (as ``fashionlens tag``)."""

    weights: str | None = None  # classifier (default: shipped)
    whole_image: bool = False
    detector: str | None = None  # detector weights (default: shipped)
    backend: str = "auto"
    batch_size: int = 16
    threads: int | None = None

    def tagger_config(self) -> TaggerConfig:
        """The tagger these options describe: ``fashionlens tag --embed`` with the same models."""
        from fashionlens.pipeline import TaggerConfig

        return TaggerConfig(weights=self.weights, backend=self.backend, threads=self.threads,  # type: ignore[arg-type]
                            whole_image=self.whole_image, detector=self.detector, embed=True)


@dataclass(frozen=True)
class FailedInput:
    """An input that could not be indexed: its path, a stable error type (as in tag error records,
    e.g. ``not_an_image``) and the message."""

    path: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.type}: {self.message}"


def _log_failure(failure: FailedInput) -> None:
    log.warning("not indexed: %s", failure)


class EmbeddingSpace:
    """Turns garment embeddings / text into index vectors and queries (see the module docstring)."""

    def __init__(self, image_dim: int, heads: AlignmentHeads | None) -> None:
        if heads is not None and heads.meta.image_dim != image_dim:
            raise ValueError(f"alignment heads expect {heads.meta.image_dim}-d garment embeddings; "
                             f"the classifier gives {image_dim}-d")
        self.image_dim = image_dim
        self.heads = heads

    @property
    def dim(self) -> int:
        return self.image_dim + (self.heads.dim if self.heads else 0)

    @property
    def scale(self) -> float:
        """Index inner product × scale = cosine in the queried space."""
        return _SQRT2 if self.heads else 1.0

    def info(self) -> dict[str, Any]:
        return {"layout": INDEX_LAYOUT, "image_dim": self.image_dim,
                "alignment": None if self.heads is None else {
                    "name": self.heads.meta.name, "version": self.heads.meta.version, "dim": self.heads.dim,
                    "classifier": self.heads.meta.classifier}}

    def index_vectors(self, embeddings: np.ndarray) -> np.ndarray:
        e = _unit(embeddings)
        if self.heads is None:
            return e
        return np.concatenate([e, self.heads.project_image(e)], axis=1) / _SQRT2

    def image_queries(self, embeddings: np.ndarray) -> np.ndarray:
        e = _unit(embeddings)
        if self.heads is None:
            return e
        return np.concatenate([e, np.zeros((len(e), self.heads.dim), np.float32)], axis=1)

    def text_queries(self, texts: Sequence[str]) -> np.ndarray:
        if self.heads is None:
            raise ValueError("this index has no text–image alignment (built without alignment heads): "
                             "text search is not available; rebuild it with the default heads")
        from fashionlens.search.text import load_text_encoder

        t = self.heads.project_text(load_text_encoder().encode(list(texts)))
        return np.concatenate([np.zeros((len(t), self.image_dim), np.float32), t], axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings: expected shape (n, dim); got {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------------ records → vectors


def read_result_records(path: str | os.PathLike[str]) -> Iterator[TagResult]:
    """The results of a ``fashionlens tag`` JSONL file (blank lines skipped; masks left undecoded)."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: expected a JSON tag result; {exc}") from None
            if not isinstance(rec, dict) or "garments" not in rec or "image" not in rec:
                raise ValueError(f"{path}:{n}: expected a fashionlens tag result (image, garments); got {str(rec)[:80]}")
            try:
                yield TagResult.from_json(rec, masks=False)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: expected a fashionlens tag result; {type(exc).__name__}: {exc}"
                                 ) from None


def stored_embeddings(garments: Garments) -> np.ndarray:
    """``(n, d)`` float32 garment embeddings at the precision a tag result stores them (float16, see
    :func:`fashionlens.result.encode_embedding`): a photo indexed or queried directly and its
    ``tag --embed`` line give the same vector. Raises ValueError without embeddings or with NaN/inf."""
    if garments.embedding is None:
        raise ValueError("the garments have no embedding; tag with `fashionlens tag --embed` "
                         "(or index the photos themselves)")
    if not np.isfinite(garments.embedding).all():
        raise ValueError("embedding: expected finite numbers; got NaN or inf")
    return garments.embedding.astype("<f2").astype(np.float32)


def garment_metadata(result: TagResult, number: int) -> GarmentMeta:
    """The index metadata row of garment ``number`` of a tag result."""
    g = result.garments
    attrs: dict[str, Any] = {"garment": number, "score": round(float(g.confidence[number]), 4)}
    for name, value in (g.attributes[number] if g.attributes is not None else {}).items():
        attrs[name] = [v.id for v in value] if isinstance(value, list) else value.id
    xyxy = None
    if result.mode == "detect":
        x, y, w, h = g.bbox_json(number)
        xyxy = (x, y, x + w, y + h)
    return GarmentMeta(path=str(result.path), xyxy=xyxy,
                       category=None if g.category is None else g.category[number].id,
                       object_type=g.object_type[number], attributes=attrs)


def garments_from_records(results: Iterable[TagResult]) -> tuple[np.ndarray, list[GarmentMeta], dict[str, int]]:
    """``(embeddings (n, d), metadata, counts)`` of every garment in tag results; error results are
    skipped (counted); garments without embeddings are an error (tag with ``--embed``)."""
    vecs: list[np.ndarray] = []
    metas: list[GarmentMeta] = []
    counts = {"records": 0, "errors": 0, "garments": 0}
    for result in results:
        counts["records"] += 1
        if result.error is not None:
            counts["errors"] += 1
            continue
        if not len(result.garments):
            continue
        try:
            vecs.append(stored_embeddings(result.garments))
        except ValueError as exc:
            raise ValueError(f"{result.path}: {exc}") from None
        metas += [garment_metadata(result, j) for j in result.garments]
    counts["garments"] = len(metas)
    dims = {v.shape[1] for v in vecs}
    if len(dims) > 1:
        raise ValueError(f"garment embeddings of different lengths {sorted(dims)}: inputs come from different classifiers")
    d = dims.pop() if dims else 0
    return (np.concatenate(vecs) if vecs else np.zeros((0, d), np.float32)), metas, counts


def garment_query(result: TagResult, garment: int, path: str) -> tuple[dict[str, Any], np.ndarray]:
    """A photo query for garment ``garment`` of ``result``: what ``search --json`` reports as ``query``
    (path, garment, object type, category, box, mode) and the garment's ``(d,)`` embedding."""
    g = result.garments
    query = {"path": path, "garment": garment, "object_type": g.object_type[garment],
             "category": None if g.category is None else g.category[garment].id,
             "bbox": g.bbox_json(garment), "mode": result.mode}
    return query, stored_embeddings(g.select([garment]))[0]


#: garments scoring below this are passed over by :func:`choose_garment` (unless none reaches it)
AUTO_GARMENT_MIN_SCORE = 0.5


def choose_garment(result: TagResult, *, min_score: float = AUTO_GARMENT_MIN_SCORE) -> int:
    """The garment a photo query searches when none is named (``--garment auto``, the API's
    ``garment=auto``): the *largest confident* garment of ``result``.

    Each garment with ``score >= min_score`` (its detector score; in whole-image mode the
    classifier's object-type probability) is weighed by ``box area × score``; the highest weight
    wins, a tie (equal to 9 significant digits) goes to the higher score, then to the lower number.
    When no garment reaches ``min_score`` every garment is weighed the same way. So a small, confidently detected shoe does
    not beat the jacket that fills the photo, and a large but doubtful box does not beat a clear one.
    Raises ValueError for a result without garments.
    """
    g = result.garments
    n = len(g)
    if n == 0:
        raise ValueError(f"{result.path}: the photo has no garments to choose from")
    scores = g.confidence
    areas = (g.xyxy[:, 2] - g.xyxy[:, 0]) * (g.xyxy[:, 3] - g.xyxy[:, 1])
    candidates = [j for j in range(n) if scores[j] >= min_score] or list(range(n))
    # weights compared to 9 significant digits, so that float noise (0.8 × 9000 vs 0.9 × 8000) is a tie
    return max(candidates, key=lambda j: (float(f"{areas[j] * scores[j]:.9g}"), float(scores[j]), -j))


def _is_results_file(item: str | os.PathLike[str]) -> bool:
    return str(item).lower().endswith((".jsonl", ".ndjson"))


def iter_input_records(inputs: Sequence[str | os.PathLike[str]], options: TagOptions, *, progress: bool = True,
                       on_failure: Callable[[FailedInput], None] = _log_failure) -> Iterator[TagResult]:
    """Results from tag-result files, then from tagging the photo inputs (with embeddings). A results
    file that cannot be read (missing, not JSON lines of tag results) yields nothing: it goes to
    ``on_failure``. Error results are yielded (see :func:`failed_inputs`)."""
    files = [i for i in inputs if _is_results_file(i)]
    photos = [i for i in inputs if not _is_results_file(i)]
    for f in files:
        try:
            records = list(read_result_records(f))  # all or nothing: a half-read file is not indexed
        except OSError as exc:
            on_failure(FailedInput(str(f), "unreadable_file", f"{type(exc).__name__}: {exc.strerror or exc}"))
            continue
        except ValueError as exc:
            on_failure(FailedInput(str(f), "not_tag_results", str(exc)))
            continue
        yield from records
    if photos:
        yield from _tag_photos(photos, options, progress=progress)


def failed_inputs(results: Iterable[TagResult]) -> list[FailedInput]:
    """The error results among ``results`` as :class:`FailedInput` s."""
    return [FailedInput(str(r.path), r.error.type or "error", r.error.message or "")
            for r in results if r.error is not None]


def _collect(inputs: Sequence[str | os.PathLike[str]], options: TagOptions, *, progress: bool,
             on_failure: Callable[[FailedInput], None]) -> tuple[list[TagResult], int]:
    """Every result of ``inputs`` and the number of failed inputs, each reported to ``on_failure``."""
    unreadable: list[FailedInput] = []

    def report(failure: FailedInput) -> None:
        unreadable.append(failure)
        on_failure(failure)

    records = list(iter_input_records(inputs, options, progress=progress, on_failure=report))
    failed = failed_inputs(records)
    for failure in failed:
        on_failure(failure)
    return records, len(unreadable) + len(failed)


def _tag_photos(photos: Sequence[str | os.PathLike[str]], options: TagOptions, *, progress: bool
                ) -> Iterator[TagResult]:
    """Tag the photos as ``fashionlens tag --embed`` does (decode-ahead threads, batches, an error result
    per unusable photo)."""
    from fashionlens.imageio import iter_image_paths
    from fashionlens.jobs.local import iter_results

    tagger = options.tagger_config().build()
    yield from iter_results(tagger, iter_image_paths(photos), batch_size=options.batch_size, progress=progress)


def _default_heads(alignment: str | os.PathLike[str] | bool | None) -> AlignmentHeads | None:
    if alignment is False:
        return None
    return load_alignment(None if alignment in (None, True) else alignment)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ build / add / remove


def build_index(inputs: Sequence[str | os.PathLike[str]], index_dir: str | os.PathLike[str], *,
                kind: IndexKind = "auto", alignment: str | os.PathLike[str] | bool | None = None,
                options: TagOptions = TagOptions(), progress: bool = True,
                ivf_storage: IvfStorage = "auto",
                on_failure: Callable[[FailedInput], None] = _log_failure) -> dict[str, Any]:
    """Build (atomically replace) the index in ``index_dir`` from ``inputs``; returns a summary
    (``errors``: the failed inputs, each reported to ``on_failure`` and left out).

    ``alignment``: heads file, ``None``/``True`` = the shipped heads, ``False`` = none (no text search).
    ``ivf_storage``: how an ``ivf`` index keeps its vectors (see :class:`GarmentIndex`).
    """
    records, n_failed = _collect(inputs, options, progress=progress, on_failure=on_failure)
    emb, metas, counts = garments_from_records(records)
    counts["errors"] = n_failed
    if not metas:
        raise ValueError(f"no garments to index in {len(records)} record(s) ({n_failed} failed inputs)")
    heads = _default_heads(alignment)
    space = EmbeddingSpace(emb.shape[1], heads)
    info = space.info() | {"classifier": _classifier_from_records(records)}
    index = GarmentIndex.build(space.index_vectors(emb), metas, index_dir, kind=kind, info=info,
                               ivf_storage=ivf_storage)
    with index:
        return {"index": str(index_dir), "kind": index.kind, "dim": index.dim, "vectors": len(index), **counts}


def _classifier_from_records(results: Sequence[TagResult]) -> dict[str, str] | None:
    for r in results:
        if r.error is None and r.model.get("name"):
            return {"name": r.model["name"], "version": str(r.model.get("version"))}
    return None


def _open_checked(index_dir: str | os.PathLike[str], alignment: str | os.PathLike[str] | None = None
                  ) -> tuple[GarmentIndex, EmbeddingSpace]:
    index = GarmentIndex.load(index_dir)
    info = index.manifest.info
    if info.get("layout") != INDEX_LAYOUT:
        index.close()
        raise ValueError(f"{index_dir}: expected an index built by `fashionlens index build` (layout {INDEX_LAYOUT}); "
                         f"got {info.get('layout')!r}")
    heads = None
    if info.get("alignment"):
        heads = load_alignment(alignment)
        want = info["alignment"]
        if (heads.meta.name, heads.meta.version, heads.dim) != (want["name"], want["version"], want["dim"]):
            index.close()
            raise ValueError(f"{index_dir} was built with alignment heads {want['name']} v{want['version']}; the "
                             f"installed ones are {heads.meta.name} v{heads.meta.version}: rebuild the index")
    return index, EmbeddingSpace(int(info["image_dim"]), heads)


def add_to_index(inputs: Sequence[str | os.PathLike[str]], index_dir: str | os.PathLike[str], *,
                 alignment: str | os.PathLike[str] | None = None, options: TagOptions = TagOptions(),
                 progress: bool = True, on_failure: Callable[[FailedInput], None] = _log_failure) -> dict[str, Any]:
    """Add the garments of ``inputs``; photos already in the index are replaced (their old garments
    removed first, a separate commit). ``alignment``: the heads the index was built with (default: shipped).
    Failed inputs are reported to ``on_failure`` and counted under ``errors``; the others are added."""
    index, space = _open_checked(index_dir, alignment)
    with index:
        records, n_failed = _collect(inputs, options, progress=progress, on_failure=on_failure)
        emb, metas, counts = garments_from_records(records)
        counts["errors"] = n_failed
        if len(metas) and emb.shape[1] != space.image_dim:
            raise ValueError(f"{index_dir} holds {space.image_dim}-d garment embeddings; the inputs have {emb.shape[1]}-d")
        clf = index.manifest.info.get("classifier")
        new = _classifier_from_records(records)
        if clf and new and clf != new:
            raise ValueError(f"{index_dir} was built from classifier {clf}; the inputs come from {new}")
        replaced = index.remove(paths=sorted({m.path for m in metas})) if metas else np.zeros(0, np.int64)
        ids = index.add(space.index_vectors(emb), metas) if metas else np.zeros(0, np.int64)
        return {"index": str(index_dir), "added": len(ids), "replaced": len(replaced),
                "vectors": len(index), "kind": index.kind, **counts}


def remove_from_index(index_dir: str | os.PathLike[str], *, paths: Sequence[str] = (), ids: Sequence[int] = ()
                      ) -> dict[str, Any]:
    """Remove every garment of ``paths`` (as stored) and the vectors ``ids``."""
    index = GarmentIndex.load(index_dir)
    with index:
        removed = index.remove(list(ids) or None, paths=list(paths) or None)
        return {"index": str(index_dir), "removed": len(removed), "vectors": len(index)}


# ------------------------------------------------------------------------------------ queries


class GarmentSearcher:
    """Open an index once; answer photo and text queries.

    >>> searcher = GarmentSearcher("runs/index")
    >>> hits = searcher.search_text("red striped wool sweater", k=10, filters={"category": "sweaters"})
    """

    def __init__(self, index_dir: str | os.PathLike[str], *, options: TagOptions = TagOptions(),
                 alignment: str | os.PathLike[str] | None = None) -> None:
        self.index, self.space = _open_checked(index_dir, alignment)
        self.options = options
        self._text_vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> query vector (recent ones)
        self._text_lock = threading.Lock()

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hits(self, q: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> list[SearchHit]:
        from dataclasses import replace

        [hits] = self.index.search(q, k, filters=filters or None)
        return [replace(h, score=float(h.score) * self.space.scale) for h in hits]

    def photo_result(self, photo: str | os.PathLike[str]) -> TagResult:
        """Tag one photo with embeddings (as the index build does)."""
        results = list(_tag_photos([photo], self.options, progress=False))
        if len(results) != 1:
            raise ValueError(f"expected one photo; {photo} gave {len(results)}")
        result = results[0]
        if result.error is not None:
            raise ValueError(f"{photo}: {result.error.type}: {result.error.message}")
        return result

    def search_image(self, photo: str | os.PathLike[str], *, garment: int = 0, k: int = 10,
                     filters: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[SearchHit]]:
        """Garments most like garment ``garment`` (0 = the first, highest-scoring) of ``photo``.
        Returns ``(the query garment's tag result, hits)``."""
        result = self.photo_result(photo)
        n = len(result.garments)
        if not 0 <= garment < n:
            raise ValueError(f"{photo}: garment {garment} does not exist; the photo has {n} "
                             f"garment(s), numbered 0–{n - 1}")
        query, embedding = garment_query(result, garment, str(photo))
        return query, self._hits(self.space.image_queries(embedding[None, :]), k, filters)

    # -------------------------------------------------------------------------------- text queries

    def text_vector(self, text: str) -> np.ndarray:
        """The ``(1, dim)`` index query of ``text`` (the whole text, through MiniLM and the text head);
        the most recent :data:`TEXT_VECTOR_CACHE` are kept. Raises ValueError for empty text or an
        index without text alignment."""
        if not text or not text.strip():
            raise ValueError("text query: expected some words; got an empty string")
        with self._text_lock:
            q = self._text_vectors.get(text)
            if q is not None:
                self._text_vectors.move_to_end(text)
                return q
        q = self.space.text_queries([text])
        with self._text_lock:
            self._text_vectors[text] = q
            while len(self._text_vectors) > TEXT_VECTOR_CACHE:
                self._text_vectors.popitem(last=False)
        return q

    def text_candidates(self, text: str, *, k: int = 10, filters: Mapping[str, Any] | None = None) -> list[SearchHit]:
        """The candidate pool a text query for ``k`` hits re-ranks: the :func:`text_pool_size` nearest
        garments by cosine (``score``), best first."""
        return self._hits(self.text_vector(text), text_pool_size(k), filters)

    def query_text(self, text: str, *, k: int = 10, filters: Mapping[str, Any] | None = None, understand: bool = True,
                   strict: bool = False, weights: MatchWeights | None = None) -> TextSearch:
        """Garments matching words (issue 27).

        ``understand`` (default): :func:`~fashionlens.search.query.parse_query` reads category,
        colours, pattern and material from the words; the :func:`text_pool_size` nearest garments
        are re-ranked by cosine + ``weights`` × agreement of their stored metadata
        (:func:`rerank_hits`). ``strict``: only garments whose metadata agrees with every understood
        field (all the colours; any of several categories) are returned — the understood fields act
        as filters, except a field that ``filters`` already sets (the explicit filter wins).
        ``understand=False``: the nearest garments by cosine alone (the behaviour before issue 27).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected an integer >= 1; got {k!r}")
        if strict and not understand:
            raise ValueError("strict: needs query understanding (understand=True)")
        q = self.text_vector(text)
        if not understand:
            return TextSearch(text=text, parsed=None, strict=False, hits=self._hits(q, k, filters))
        parsed = parse_query(text)
        w = DEFAULT_WEIGHTS if weights is None else weights
        explicit = set(filters or ())
        if not strict or parsed.empty:
            pool = self._hits(q, text_pool_size(k), filters)
            return TextSearch(text=text, parsed=parsed, strict=strict, hits=rerank_hits(pool, parsed, weights=w)[:k])
        wanted = {f: v for f, v in parsed.index_filters().items() if f not in explicit}
        filterable = {"category", *self.index.manifest.attribute_keys}
        merged = dict(filters or {}) | {f: v for f, v in wanted.items() if f in filterable}
        require = set(wanted)  # index_filters() and match() name the fields alike
        n = text_pool_size(k)
        while True:  # all-of colours are checked after the search: widen until k agree or none are left
            pool = self._hits(q, n, merged)
            ranked = rerank_hits(pool, parsed, weights=w, require=require)
            if len(ranked) >= k or len(pool) < n or n >= len(self.index):
                break
            n = min(n * 4, len(self.index))
        return TextSearch(text=text, parsed=parsed, strict=True, hits=ranked[:k])

    def search_text(self, text: str, *, k: int = 10, filters: Mapping[str, Any] | None = None, understand: bool = True,
                    strict: bool = False, weights: MatchWeights | None = None) -> list[SearchHit]:
        """The hits of :meth:`query_text` (same arguments)."""
        return self.query_text(text, k=k, filters=filters, understand=understand, strict=strict, weights=weights).hits


# ------------------------------------------------------------------------------------ text re-ranking

#: a text query for ``k`` hits re-ranks the ``TEXT_POOL_FACTOR·k`` nearest garments, within [MIN, MAX]
TEXT_POOL_FACTOR = 10
TEXT_POOL_MIN = 100
TEXT_POOL_MAX = 1000
#: text query vectors a searcher keeps (MiniLM takes a few milliseconds per query)
TEXT_VECTOR_CACHE = 256


def text_pool_size(k: int) -> int:
    """How many nearest garments a text query for ``k`` hits re-ranks."""
    return int(min(max(TEXT_POOL_FACTOR * k, TEXT_POOL_MIN), max(TEXT_POOL_MAX, k)))


@dataclass(frozen=True)
class TextHit(SearchHit):
    """A re-ranked text hit: ``score`` = ``similarity`` (the cosine) + the weighted ``match`` of the
    understood fields (each in [0, 1], see :meth:`fashionlens.search.query.ParsedQuery.match`)."""

    similarity: float = 0.0
    match: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"similarity": round(self.similarity, 6),
                                    "match": {f: round(v, 4) for f, v in self.match.items()}}


@dataclass(frozen=True)
class TextSearch:
    """The answer to a text query: the hits and what was understood (``parsed``; None when query
    understanding was off)."""

    text: str
    parsed: ParsedQuery | None
    strict: bool
    hits: list[SearchHit]

    def understood(self) -> dict[str, Any] | None:
        """What the search output reports under ``understood`` (None: understanding off)."""
        return None if self.parsed is None else self.parsed.understood()


def rerank_hits(pool: Sequence[SearchHit], parsed: ParsedQuery, *, weights: MatchWeights = DEFAULT_WEIGHTS,
                require: Iterable[str] = ()) -> list[TextHit]:
    """``pool`` (cosine ``score``) ordered by cosine + ``weights`` × agreement of each hit's stored
    category/colours/pattern/material with ``parsed``; ties keep the pool's order. Hits that do not
    fully agree (match 1) on every field in ``require`` are dropped. Ranks are renumbered from 1."""
    need = set(require)
    scored: list[tuple[float, int, SearchHit, dict[str, float]]] = []
    for i, h in enumerate(pool):
        match = parsed.match(h.category, h.attributes)
        if any(match.get(f, 0.0) < 1.0 for f in need):
            continue
        scored.append((float(h.score) + weights.bonus(match), i, h, match))
    scored.sort(key=lambda t: (-t[0], t[1]))
    out: list[TextHit] = []
    for rank, (score, _, h, match) in enumerate(scored, start=1):
        base = {f.name: getattr(h, f.name) for f in fields_of(SearchHit)}
        out.append(TextHit(**(base | {"rank": rank, "score": score}), similarity=float(h.score), match=match))
    return out
