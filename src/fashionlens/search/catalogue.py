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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fashionlens.result import decode_embedding
from fashionlens.search._store import GarmentMeta
from fashionlens.search.alignment import AlignmentHeads, load_alignment
from fashionlens.search.index import GarmentIndex, IndexKind, IvfStorage, SearchHit

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

__all__ = ["INDEX_LAYOUT", "EmbeddingSpace", "FailedInput", "GarmentSearcher", "TagOptions", "add_to_index",
           "build_index", "garments_from_records", "read_result_records", "remove_from_index"]

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


def read_result_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a ``fashionlens tag`` JSONL file (blank lines skipped)."""
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
            yield rec


def garment_metadata(record: Mapping[str, Any], number: int, garment: Mapping[str, Any]) -> GarmentMeta:
    """The index metadata row of garment ``number`` of a tag result."""
    attrs: dict[str, Any] = {"garment": number}
    if garment.get("score") is not None:
        attrs["score"] = float(garment["score"])
    for name, value in (garment.get("attributes") or {}).items():
        if isinstance(value, Mapping) and "id" in value:
            attrs[name] = value["id"]
        elif isinstance(value, list):
            attrs[name] = [v["id"] if isinstance(v, Mapping) else v for v in value]
        elif value is None or isinstance(value, (str, int, float, bool)):
            attrs[name] = value
    xyxy = None
    if record.get("mode") == "detect" and garment.get("bbox"):
        x, y, w, h = (float(v) for v in garment["bbox"])
        xyxy = (x, y, x + w, y + h)
    cat = garment.get("category")
    return GarmentMeta(path=str(record["image"]["path"]), xyxy=xyxy,
                       category=cat.get("id") if isinstance(cat, Mapping) else cat,
                       object_type=garment.get("object_type"), attributes={k: v for k, v in attrs.items() if v is not None})


def garments_from_records(records: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, list[GarmentMeta], dict[str, int]]:
    """``(embeddings (n, d), metadata, counts)`` of every garment in tag results; error records are
    skipped (counted); a garment without an embedding is an error (tag with ``--embed``)."""
    vecs: list[np.ndarray] = []
    metas: list[GarmentMeta] = []
    counts = {"records": 0, "errors": 0, "garments": 0}
    for rec in records:
        counts["records"] += 1
        if rec.get("error"):
            counts["errors"] += 1
            continue
        for j, g in enumerate(rec.get("garments") or []):
            if "embedding" not in g:
                raise ValueError(f"{rec['image'].get('path')}: garment {j} has no embedding; tag with "
                                 "`fashionlens tag --embed` (or index the photos themselves)")
            try:
                vecs.append(decode_embedding(g["embedding"]))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{rec['image'].get('path')}: garment {j}: {exc}") from None
            metas.append(garment_metadata(rec, j, g))
    counts["garments"] = len(metas)
    dims = {len(v) for v in vecs}
    if len(dims) > 1:
        raise ValueError(f"garment embeddings of different lengths {sorted(dims)}: inputs come from different classifiers")
    d = dims.pop() if dims else 0
    return (np.stack(vecs) if vecs else np.zeros((0, d), np.float32)), metas, counts


def _is_results_file(item: str | os.PathLike[str]) -> bool:
    return str(item).lower().endswith((".jsonl", ".ndjson"))


def iter_input_records(inputs: Sequence[str | os.PathLike[str]], options: TagOptions, *, progress: bool = True,
                       on_failure: Callable[[FailedInput], None] = _log_failure) -> Iterator[dict[str, Any]]:
    """Records from tag-result files, then from tagging the photo inputs (with embeddings). A results
    file that cannot be read (missing, not JSON lines of tag results) yields nothing: it goes to
    ``on_failure``. Error records are yielded (see :func:`failed_inputs`)."""
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


def failed_inputs(records: Iterable[Mapping[str, Any]]) -> list[FailedInput]:
    """The error records among ``records`` as :class:`FailedInput` s."""
    out = []
    for rec in records:
        error = rec.get("error")
        if error:
            err = error if isinstance(error, Mapping) else {"message": str(error)}
            out.append(FailedInput(str((rec.get("image") or {}).get("path")), str(err.get("type") or "error"),
                                   str(err.get("message") or "")))
    return out


def _collect(inputs: Sequence[str | os.PathLike[str]], options: TagOptions, *, progress: bool,
             on_failure: Callable[[FailedInput], None]) -> tuple[list[dict[str, Any]], int]:
    """Every record of ``inputs`` and the number of failed inputs, each reported to ``on_failure``."""
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
                ) -> Iterator[dict[str, Any]]:
    from fashionlens.imageio import iter_image_paths
    from fashionlens.pipeline import Tagger
    from fashionlens.jobs.local import tag_paths

    paths = iter_image_paths(photos)
    detector = None
    if not options.whole_image:
        from fashionlens.detection.detector import GarmentDetector

        detector = GarmentDetector(options.detector, threads=options.threads)
    tagger = Tagger(options.weights, backend=options.backend, threads=options.threads,  # type: ignore[arg-type]
                    detector=detector, embed=True)
    yield from tag_paths(tagger, paths, batch_size=options.batch_size, progress=progress)


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


def _classifier_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    for r in records:
        model = r.get("model") or {}
        if not r.get("error") and model.get("name"):
            return {"name": model["name"], "version": str(model.get("version"))}
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

    def photo_record(self, photo: str | os.PathLike[str]) -> dict[str, Any]:
        """Tag one photo with embeddings (as the index build does)."""
        records = list(_tag_photos([photo], self.options, progress=False))
        if len(records) != 1:
            raise ValueError(f"expected one photo; {photo} gave {len(records)}")
        rec = records[0]
        if rec.get("error"):
            raise ValueError(f"{photo}: {rec['error']['type']}: {rec['error']['message']}")
        return rec

    def search_image(self, photo: str | os.PathLike[str], *, garment: int = 0, k: int = 10,
                     filters: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[SearchHit]]:
        """Garments most like garment ``garment`` (0 = the first, highest-scoring) of ``photo``.
        Returns ``(the query garment's tag result, hits)``."""
        rec = self.photo_record(photo)
        garments = rec["garments"]
        if not 0 <= garment < len(garments):
            raise ValueError(f"{photo}: garment {garment} does not exist; the photo has {len(garments)} "
                             f"garment(s), numbered 0–{len(garments) - 1}")
        g = garments[garment]
        q = self.space.image_queries(decode_embedding(g["embedding"])[None, :])
        query = {"path": str(photo), "garment": garment, "object_type": g["object_type"],
                 "category": g["category"]["id"], "bbox": g["bbox"], "mode": rec["mode"]}
        return query, self._hits(q, k, filters)

    def search_text(self, text: str, *, k: int = 10, filters: Mapping[str, Any] | None = None) -> list[SearchHit]:
        if not text or not text.strip():
            raise ValueError("text query: expected some words; got an empty string")
        return self._hits(self.space.text_queries([text]), k, filters)
