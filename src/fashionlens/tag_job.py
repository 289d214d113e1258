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
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from fashionlens.detect import DetectSettings, GarmentDetector
from fashionlens.imageio import DecodedImage, iter_image_paths, load_image
from fashionlens.models.meta import ClassifierMeta
from fashionlens.pipeline import Tagger, error_record, preprocess
from fashionlens.render import render_result
from fashionlens.runtime.backends import BackendName

log = logging.getLogger(__name__)


#: shortest side kept when decoding for detection (JPEG draft): enough for the detector's 384 px and crops
DETECT_MIN_SIDE = 512


def _decode(path: Path, *, max_pixels: int, meta: ClassifierMeta, detect: bool = False
            ) -> tuple[DecodedImage | BaseException, np.ndarray | None, float]:
    """Decode (and in whole-image mode preprocess) one input in a worker thread (PIL and NumPy
    release the GIL)."""
    t0 = time.perf_counter()
    try:
        image = load_image(path, max_pixels=max_pixels, min_side=DETECT_MIN_SIDE if detect else meta.input_size)
    except (ValueError, OSError) as exc:  # ImageDecodeError is a ValueError
        return exc, None, (time.perf_counter() - t0) * 1000
    x = None if detect else preprocess(image.rgb, meta)
    return image, x, (time.perf_counter() - t0) * 1000


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


@contextmanager
def _open_output(output: str | Path | IO[str]) -> Iterator[IO[str]]:
    if hasattr(output, "write"):
        yield output  # type: ignore[misc]
    elif str(output) == "-":
        yield sys.stdout
    else:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            yield fh


def tag_paths(tagger: Tagger, paths: Sequence[Path], *, batch_size: int = 16, decode_threads: int = 2,
              max_pixels: int = 40_000_000, progress: bool = True,
              on_image: Callable[[DecodedImage, dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one result record per path, in order. Decoding runs ahead in ``decode_threads`` threads.

    ``on_image(decoded, record)`` is called for every tagged photo (e.g. to render it)."""
    detect = tagger.detector is not None
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool, \
            tqdm(total=len(paths), desc="tag", unit="img", disable=not progress, file=sys.stderr) as bar:
        decoded = _bounded_map(pool, lambda p: _decode(p, max_pixels=max_pixels, meta=tagger.meta, detect=detect), paths,
                               ahead=2 * batch_size + decode_threads)
        batch: list[tuple[int, Any, Any, float]] = []

        def flush() -> list[dict[str, Any]]:
            ok = [(i, im, x, ms) for i, im, x, ms in batch if isinstance(im, DecodedImage)]
            results: dict[int, dict[str, Any]] = {}
            if ok:
                try:
                    recs = tagger.tag_batch([im for _, im, _, _ in ok], [str(paths[i]) for i, _, _, _ in ok],
                                            [ms for _, _, _, ms in ok],
                                            inputs=None if detect else [x for _, _, x, _ in ok])
                    results.update({i: r for (i, _, _, _), r in zip(ok, recs)})
                    if on_image is not None:
                        for (_, im, _, _), r in zip(ok, recs):
                            on_image(im, r)
                except Exception as exc:  # a model failure loses one batch's results, never the job
                    log.exception("inference failed for a batch of %d images", len(ok))
                    for i, _, _, _ in ok:
                        results[i] = error_record(str(paths[i]), exc, model=tagger.model_info)
                        results[i]["error"]["type"] = "inference_failed"
            for i, im, _, _ in batch:
                if i not in results:
                    results[i] = error_record(str(paths[i]), im, model=tagger.model_info)
            bar.update(len(batch))
            return [results[i] for i, _, _, _ in batch]

        for i, (im, x, ms) in enumerate(decoded):
            batch.append((i, im, x, ms))
            if len(batch) == batch_size:
                yield from flush()
                batch = []
        if batch:
            yield from flush()


def run_tag_job(inputs: Sequence[str], *, output: str | Path | IO[str] = "-", weights: str | None = None,
                backend: BackendName = "auto", batch_size: int = 16, threads: int | None = None,
                whole_image: bool = False, detector: str | None = None, detect_settings: DetectSettings | None = None,
                render_dir: str | Path | None = None, detector_backend: str = "auto", max_pixels: int = 40_000_000, progress: bool = True,
                on_summary: Callable[[str], None] | None = None, embed: bool = False) -> int:
    """Tag ``inputs`` (files, folders, globs) into JSONL; return 0 (all tagged) or 1 (some failed).

    Detect → crop → classify with the shipped detector (or ``detector`` weights) unless
    ``whole_image``. ``render_dir``: write an annotated PNG per photo. The one-line summary goes to
    ``on_summary`` (the CLI prints it), else to the log. ``embed``: store each garment's embedding
    (:mod:`fashionlens.embeddings`) in its result.
    """
    paths = iter_image_paths(inputs)
    garment_detector = None if whole_image else GarmentDetector(detector, settings=detect_settings or DetectSettings(),
                                                                threads=threads, backend=detector_backend)
    tagger = Tagger(weights, backend=backend, threads=threads, detector=garment_detector, embed=embed)
    on_image = None
    if render_dir is not None:
        render_path = Path(render_dir)
        render_path.mkdir(parents=True, exist_ok=True)

        def on_image(im: DecodedImage, record: dict[str, Any]) -> None:
            stem = Path(record["image"]["path"]).stem
            bgr = cv2.cvtColor(render_result(im.rgb, record), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(render_path / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    t0 = time.perf_counter()
    failed = 0
    with _open_output(output) as fh:
        for record in tag_paths(tagger, paths, batch_size=batch_size, max_pixels=max_pixels, progress=progress,
                                on_image=on_image):
            if record["error"] is not None:
                failed += 1
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
    dt = time.perf_counter() - t0
    n = len(paths)
    summary = (f"tagged {n - failed}/{n} images ({failed} failed) in {dt:.1f} s "
               f"({n / dt if dt > 0 else 0:.1f} img/s, backend {tagger.backend.name})")
    (on_summary or log.info)(summary)
    return 1 if failed else 0
