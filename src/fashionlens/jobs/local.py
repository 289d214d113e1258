"""Tag many photos: decode in parallel threads, classify in batches, write JSON lines in input order.

Every input gets exactly one line: a result, or an ``error`` record (unreadable, truncated, not an
image, too many pixels …). The job never stops on a bad input; its return code says whether any
input failed (0 = all tagged, 1 = some failed).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from fashionlens.colours.naming import GarmentPixels, whole_image_pixels
from fashionlens.imageio import DecodedImage, iter_image_paths, load_image
from fashionlens.jobs.output import open_text_output
from fashionlens.jobs.store import TagJob
from fashionlens.models.meta import ClassifierMeta
from fashionlens.pipeline import Tagger, TaggerConfig, inference_failed, preprocess
from fashionlens.result import TagResult
from fashionlens.render import annotate
from fashionlens.runtime.backends import BackendName

if TYPE_CHECKING:  # the detector (and torch) is imported only when detecting
    from fashionlens.detection.detector import DetectSettings

log = logging.getLogger(__name__)


#: shortest side kept when decoding for detection (JPEG draft): enough for the detector's 384 px and crops
DETECT_MIN_SIDE = 512


def _decode(path: Path, *, max_pixels: int, meta: ClassifierMeta, detect: bool = False,
            pixels_of: Callable[[np.ndarray], GarmentPixels] = whole_image_pixels
            ) -> tuple[DecodedImage | BaseException, tuple[np.ndarray, GarmentPixels] | None, float]:
    """Decode one input in a worker thread (PIL, NumPy and OpenCV release the GIL); in whole-image mode
    also preprocess it and find the garment's colour pixels, so that work overlaps with inference."""
    t0 = time.perf_counter()
    try:
        image = load_image(path, max_pixels=max_pixels, min_side=DETECT_MIN_SIDE if detect else meta.input_size)
    except (ValueError, OSError) as exc:  # ImageDecodeError is a ValueError
        return exc, None, (time.perf_counter() - t0) * 1000
    if detect:
        return image, None, (time.perf_counter() - t0) * 1000
    try:
        x = (preprocess(image.rgb, meta), pixels_of(image.rgb))
    except Exception as exc:  # a decoded photo the preprocessing cannot use fails alone, never the job
        log.error("preprocessing failed for %s: %s", path, exc)
        return _InferenceFailed(exc), None, (time.perf_counter() - t0) * 1000
    return image, x, (time.perf_counter() - t0) * 1000


class _InferenceFailed(Exception):
    """A decoded photo whose preprocessing failed: reported as ``inference_failed``."""

    code = "inference_failed"

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}"[:500])


def _bounded_map(pool: ThreadPoolExecutor, fn, items: Sequence, ahead: int) -> Iterator:
    """Like ``pool.map`` but keeps at most ``ahead`` items in flight, so memory stays bounded."""
    pending: deque[Future] = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            break
    while pending:
        yield pending.popleft().result()
        nxt = next(it, _END)
        if nxt is not _END:
            pending.append(pool.submit(fn, nxt))


_END = object()


def iter_results(tagger: Tagger, paths: Sequence[Path], *, batch_size: int = 16, decode_threads: int = 2,
                 max_pixels: int = 40_000_000, progress: bool = True,
                 on_image: Callable[[DecodedImage, TagResult], None] | None = None,
                 streams: int = 1) -> Iterator[TagResult]:
    """Yield one :class:`~fashionlens.result.TagResult` per path, in order. Decoding runs ahead in
    ``decode_threads`` threads.

    ``streams`` batches go through the models at the same time, each in its own thread (the
    models are shared: ONNX Runtime sessions and torch inference are thread-safe). With
    single-threaded models, ``streams`` = the number of cores keeps every core busy through the
    detector's serial Python/torch steps, which intra-op threads cannot. ``on_image(decoded,
    result)`` is called for every tagged photo (e.g. to render it), from the stream's thread.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if streams <= 0:
        raise ValueError(f"streams must be positive, got {streams}")
    detect = tagger.detector is not None

    def run_batch(batch: list[tuple[int, Any, Any, float]]) -> list[TagResult]:
        return _tag_decoded(tagger, batch, paths, on_image=on_image)

    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool, \
            ThreadPoolExecutor(max_workers=streams, thread_name_prefix="tag-stream") as workers, \
            tqdm(total=len(paths), desc="tag", unit="img", disable=not progress, file=sys.stderr) as bar:
        decoded = _bounded_map(pool, lambda p: _decode(p, max_pixels=max_pixels, meta=tagger.meta, detect=detect,
                                                       pixels_of=tagger.whole_image_pixels), paths,
                               ahead=(streams + 1) * batch_size + decode_threads)
        running: deque[tuple[int, Future[list[TagResult]]]] = deque()
        batch: list[tuple[int, Any, Any, float]] = []

        def finished() -> list[TagResult]:
            size, future = running.popleft()
            results = future.result()
            bar.update(size)
            return results

        for i, (im, x, ms) in enumerate(decoded):
            batch.append((i, im, x, ms))
            if len(batch) == batch_size:
                if len(running) == streams:
                    yield from finished()
                running.append((len(batch), workers.submit(run_batch, batch)))
                batch = []
        if batch:
            running.append((len(batch), workers.submit(run_batch, batch)))
        while running:
            yield from finished()


def tag_paths(tagger: Tagger, paths: Sequence[Path], **kwargs: Any) -> Iterator[dict[str, Any]]:
    """:func:`iter_results` as ``fashionlens/result/v1`` JSON records (what ``tag`` writes)."""
    return (result.to_json() for result in iter_results(tagger, paths, **kwargs))


def _tag_decoded(tagger: Tagger, batch: Sequence[tuple[int, Any, Any, float]], paths: Sequence[Path], *,
                 on_image: Callable[[DecodedImage, TagResult], None] | None) -> list[TagResult]:
    """One batch of ``(index, decoded image or its decode error, preprocessed input, decode ms)``:
    every input gets its result, in order; a model failure loses only its own photos' results."""
    detect = tagger.detector is not None
    ok = [(i, im, x, ms) for i, im, x, ms in batch if isinstance(im, DecodedImage)]
    results: dict[int, TagResult] = {}
    if ok:
        try:
            tagged = tagger.tag([im for _, im, _, _ in ok], [str(paths[i]) for i, _, _, _ in ok],
                                [ms for _, _, _, ms in ok],
                                inputs=None if detect else [x[0] for _, _, x, _ in ok],
                                pixels=None if detect else [x[1] for _, _, x, _ in ok])
            results.update({i: r for (i, _, _, _), r in zip(ok, tagged)})
        except Exception as exc:  # a model failure loses one batch's results, never the job
            log.exception("inference failed for a batch of %d images", len(ok))
            for i, _, _, _ in ok:
                results[i] = TagResult.failed(str(paths[i]), inference_failed(exc), model=tagger.model_info)
    for i, im, _, _ in batch:
        if i not in results:
            results[i] = TagResult.failed(str(paths[i]), im, model=tagger.model_info)
        elif on_image is not None and results[i].ok:
            try:
                on_image(im, results[i])
            except Exception as exc:  # a failed picture loses the picture, never the result
                log.error("could not render %s: %s", paths[i], exc)
    return [results[i] for i, _, _, _ in batch]


def run_tag_job(inputs: Sequence[str], *, output: str | Path | IO[str] | None = "-", weights: str | None = None,
                backend: BackendName = "auto", batch_size: int = 16, threads: int | None = None,
                whole_image: bool = False, detector: str | None = None, detect_settings: DetectSettings | None = None,
                render_dir: str | Path | None = None, detector_backend: str = "auto", max_pixels: int = 40_000_000, progress: bool = True,
                on_summary: Callable[[str], None] | None = None, embed: bool = False,
                manifest: str | Path | None = None, job_dir: str | Path | None = None, chunk_size: int | None = None,
                formats: Sequence[str] | None = None, resume: bool = False, streams: int = 1,
                type_fusion: bool = True, pixel_colours: bool = True, precision: float | None = None,
                keep_uncertain: bool = False, detection_precision: float | None = None, cross_type: bool = True) -> int:
    """Tag ``inputs`` (files, folders, globs) into JSONL; return 0 (all tagged) or 1 (some failed).

    Detect → crop → classify with the shipped detector (or ``detector`` weights) unless
    ``whole_image``. ``render_dir``: write an annotated PNG per photo. The one-line summary goes to
    ``on_summary`` (the CLI prints it), else to the log. ``embed``: store each garment's embedding
    (:func:`fashionlens.result.encode_embedding`) in its result. ``manifest``: a file listing more inputs
    (:func:`fashionlens.jobs.store.read_manifest`).

    ``job_dir``: a resumable job (:mod:`fashionlens.jobs.store`) writing chunks of ``chunk_size``
    results in ``formats`` there; ``resume`` continues the job in ``job_dir`` (with no ``inputs``:
    its stored input list). ``output`` (not ``"-"``/``None``) then receives the merged results once
    the job is complete (``.parquet`` → Parquet, else JSONL).

    ``streams``: batches in flight through the shared models at once (:func:`tag_paths`).
    ``type_fusion``: let a confident classifier override the detector's object type
    (:mod:`fashionlens.detection.type_fusion`); False keeps the detector's. ``pixel_colours``: average the shipped
    pixel colour model (:mod:`fashionlens.models.pixel_colours`) into colour names; False: the colour head alone.
    ``precision`` / ``keep_uncertain`` / ``detection_precision``: the operating points
    (:class:`~fashionlens.pipeline.TaggerConfig`). ``cross_type``: drop the lower-scored of two garments of different
    object types covering the same region (:mod:`fashionlens.detection.cross_type`).
    """
    if job_dir is not None:
        return _run_job_dir(inputs, job_dir=job_dir, manifest=manifest, chunk_size=chunk_size, formats=formats,
                            resume=resume, output=output, weights=weights, backend=backend, batch_size=batch_size,
                            threads=threads, whole_image=whole_image, detector=detector,
                            detect_settings=detect_settings, render_dir=render_dir,
                            detector_backend=detector_backend, max_pixels=max_pixels, progress=progress,
                            on_summary=on_summary, embed=embed, streams=streams, type_fusion=type_fusion,
                            pixel_colours=pixel_colours, precision=precision, keep_uncertain=keep_uncertain,
                            detection_precision=detection_precision, cross_type=cross_type)
    if manifest is not None:
        from fashionlens.jobs.store import resolve_inputs

        paths = resolve_inputs(inputs, manifest=manifest)
    else:
        paths = iter_image_paths(inputs)
    tagger = _config(weights=weights, backend=backend, threads=threads, whole_image=whole_image,
                     detector=detector, detect_settings=detect_settings, detector_backend=detector_backend,
                     embed=embed, type_fusion=type_fusion, pixel_colours=pixel_colours, precision=precision,
                     keep_uncertain=keep_uncertain, detection_precision=detection_precision,
                     cross_type=cross_type).build()
    on_image = _renderer(render_dir)
    t0 = time.perf_counter()
    failed = 0
    with open_text_output(output) as fh:
        for result in iter_results(tagger, paths, batch_size=batch_size, max_pixels=max_pixels, progress=progress,
                                   on_image=on_image, streams=streams):
            failed += not result.ok
            fh.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            fh.flush()
    dt = time.perf_counter() - t0
    n = len(paths)
    summary = (f"tagged {n - failed}/{n} images ({failed} failed) in {dt:.1f} s "
               f"({n / dt if dt > 0 else 0:.1f} img/s, backend {tagger.backend.name})")
    (on_summary or log.info)(summary)
    return 1 if failed else 0


def _config(*, weights: str | None, backend: BackendName, threads: int | None, whole_image: bool,
            detector: str | None, detect_settings: DetectSettings | None, detector_backend: str,
            embed: bool, type_fusion: bool = True, pixel_colours: bool = True, precision: float | None = None,
            keep_uncertain: bool = False, detection_precision: float | None = None,
            cross_type: bool = True) -> TaggerConfig:
    return TaggerConfig(weights=weights, backend=backend, threads=threads, whole_image=whole_image, detector=detector,
                        detect_settings=detect_settings, detector_backend=detector_backend, embed=embed,
                        type_fusion=type_fusion, pixel_colours=pixel_colours, precision=precision,
                        keep_uncertain=keep_uncertain, detection_precision=detection_precision, cross_type=cross_type)


def _renderer(render_dir: str | Path | None) -> Callable[[DecodedImage, TagResult], None] | None:
    if render_dir is None:
        return None
    render_path = Path(render_dir)
    render_path.mkdir(parents=True, exist_ok=True)

    def on_image(im: DecodedImage, result: TagResult) -> None:
        stem = Path(result.path).stem
        bgr = cv2.cvtColor(annotate(im.rgb, result), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(render_path / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return on_image


def _run_job_dir(inputs: Sequence[str], *, job_dir: str | Path, manifest: str | Path | None, chunk_size: int | None,
                 formats: Sequence[str] | None, resume: bool, output: str | Path | IO[str] | None,
                 weights: str | None, backend: BackendName, batch_size: int, threads: int | None, whole_image: bool,
                 detector: str | None, detect_settings: DetectSettings | None, render_dir: str | Path | None,
                 detector_backend: str, max_pixels: int, progress: bool, on_summary: Callable[[str], None] | None,
                 embed: bool, streams: int = 1, type_fusion: bool = True, pixel_colours: bool = True,
                 precision: float | None = None, keep_uncertain: bool = False,
                 detection_precision: float | None = None, cross_type: bool = True) -> int:
    """``run_tag_job`` with ``job_dir``: inputs and settings are checked against the job before any model loads."""
    from fashionlens.jobs.store import TagJob, merge_job, resolve_inputs

    paths = resolve_inputs(inputs, manifest=manifest) if inputs or manifest is not None or not resume else None
    config = _config(weights=weights, backend=backend, threads=threads, whole_image=whole_image, detector=detector,
                     detect_settings=detect_settings, detector_backend=detector_backend, embed=embed,
                     type_fusion=type_fusion, pixel_colours=pixel_colours, precision=precision,
                     keep_uncertain=keep_uncertain, detection_precision=detection_precision, cross_type=cross_type)
    settings = config.job_settings(max_pixels=max_pixels)
    with TagJob.open(job_dir, inputs=paths, settings=settings, chunk_size=chunk_size, formats=formats,
                     resume=resume) as job:
        before = job.n_done
        tagger = None
        if job.pending_chunks():
            tagger = config.build()
            job.bind_model(tagger.model_info)
            stats = run_job(job, tagger, batch_size=batch_size, max_pixels=max_pixels, progress=progress,
                            on_image=_renderer(render_dir), streams=streams)
        else:
            stats = None
        engine = f"backend {tagger.backend.name}" if tagger is not None else "local"
        (on_summary or log.info)(job_run_summary(job, stats, before=before, engine=engine))
        total_failed = job.n_failed
    if output is not None and output != "-":
        merge_job(job_dir, output)
    return 1 if total_failed else 0


# ------------------------------------------------------------------------------ running a job's chunks


@dataclass
class JobRunStats:
    """What one :func:`run_job` call did."""

    tagged: int = 0
    failed: int = 0
    chunks: int = 0
    seconds: float = 0.0


def job_run_summary(job: TagJob, stats: JobRunStats | None, *, before: int, engine: str) -> str:
    """One line for the end of a run: what this run tagged (``stats``; None = nothing was pending)
    and where the job stands; ``engine`` says what ran it (e.g. ``backend onnx``, ``engine ray``)."""
    if stats is None:
        head = "nothing left to tag"
    else:
        n, failed, dt = stats.tagged, stats.failed, stats.seconds
        head = (f"tagged {n - failed}/{n} images ({failed} failed) in {dt:.1f} s "
                f"({n / dt if dt > 0 else 0:.1f} img/s, {engine})")
    return (f"{head}; job {job.folder}: {job.n_done}/{len(job.inputs)} inputs done ({before} before this run), "
            f"{job.n_failed} failed, {len(job.committed)}/{job.n_chunks} chunks")


def run_job(job: TagJob, tagger: Tagger, *, batch_size: int = 16, decode_threads: int = 2,
            max_pixels: int = 40_000_000, progress: bool = True,
            on_image: Callable[[DecodedImage, TagResult], None] | None = None,
            streams: int = 1) -> JobRunStats:
    """Tag the job's pending chunks with ``tagger`` (:func:`iter_results`: decoding
    runs ahead across chunk boundaries, ``streams`` batches at once) and commit each as soon as it is
    complete."""
    from tqdm.auto import tqdm

    pending = job.pending_chunks()
    paths = [Path(p) for k in pending for p in job.chunk_inputs(k)]
    stats = JobRunStats()
    t0 = time.perf_counter()
    with tqdm(total=len(job.inputs), initial=job.n_done, desc="tag", unit="img", disable=not progress,
              file=sys.stderr) as bar:
        records = iter_results(tagger, paths, batch_size=batch_size, decode_threads=decode_threads,
                            max_pixels=max_pixels, progress=False, on_image=on_image, streams=streams)
        try:
            for k in pending:
                want = len(job.chunk_inputs(k))
                chunk = []
                for record in records:
                    chunk.append(record)
                    bar.update(1)
                    if len(chunk) == want:
                        break
                entry = job.commit_chunk(k, chunk)
                stats.tagged += len(chunk)
                stats.failed += entry.failed
                stats.chunks += 1
        finally:
            records.close()
    stats.seconds = time.perf_counter() - t0
    return stats
