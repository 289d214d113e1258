"""The Ray engine of ``fashionlens tag``: the same pipeline on Ray Data, on one machine or a cluster.

Inputs (paths) become a Ray dataset of ``(input_index, path)`` rows; ``map_batches`` runs them
through an **actor pool** of :class:`TagActor` s, each holding one :class:`~fashionlens.pipeline.Tagger`
(and optional :class:`~fashionlens.detection.detector.GarmentDetector`) loaded once. An actor tags its batch with
the local engine's own :func:`fashionlens.jobs.local.tag_paths` (same decoding, batching, error records),
so both engines produce the same records apart from ``timing_ms``.

Actors return each record as JSON (``input_index``, ``record_json``), so nothing is lost on the way
back. Results are written by the driver:

* :func:`run_ray_job` commits them through :class:`fashionlens.jobs.store.TagJob` as soon as a chunk's
  inputs are all back — the same job folder, JSONL/Parquet chunks and ``--resume`` as the local
  engine (a job may even be started with one engine and resumed with the other);
* :func:`iter_ray_records` yields them in input order (plain ``tag`` without a job folder);
* :func:`to_parquet_rows` turns a tagged dataset into rows of
  :data:`fashionlens.jobs.store.PARQUET_COLUMNS`, for writing Parquet from the workers
  (``ds.write_parquet(uri)``) when the driver should not see the results.

``ray`` is imported only here and only when used (``pip install "ray[data]"``). See ``docs/ray.md``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from fashionlens.jobs.output import open_text_output

if TYPE_CHECKING:
    import ray.data

    from fashionlens.jobs.local import JobRunStats
    from fashionlens.jobs.store import TagJob
    from fashionlens.pipeline import TaggerConfig

log = logging.getLogger(__name__)

#: columns of the tagged dataset: position in the input list and the full result record as JSON
RESULT_COLUMNS = ("input_index", "record_json")


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RuntimeError('the Ray engine needs Ray Data: pip install "ray[data]"') from exc
    return ray


class TagActor:
    """One worker of the actor pool: loads the models once, then tags batches of ``(input_index, path)``.

    Relative paths are read relative to ``working_dir`` (the driver's folder) when it exists on the
    worker's machine; records keep the paths as given.
    """

    def __init__(self, spec: TaggerConfig, *, batch_size: int = 16, decode_threads: int = 1,
                 max_pixels: int = 40_000_000, working_dir: str | None = None) -> None:
        if working_dir and os.path.isdir(working_dir) and os.getcwd() != working_dir:
            os.chdir(working_dir)  # an actor is a process of its own: relative inputs as on the driver
        self.tagger = spec.build()
        self.batch_size = batch_size
        self.decode_threads = decode_threads
        self.max_pixels = max_pixels

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from fashionlens.jobs.local import tag_paths

        index = [int(i) for i in batch["input_index"]]
        paths = [Path(str(p)) for p in batch["path"]]
        records = tag_paths(self.tagger, paths, batch_size=self.batch_size, decode_threads=self.decode_threads,
                            max_pixels=self.max_pixels, progress=False)
        out = [json.dumps(r, ensure_ascii=False) for r in records]
        if len(out) != len(index):  # tag_paths yields one record per path; anything else is a bug
            raise RuntimeError(f"expected {len(index)} records from a batch, got {len(out)}")
        return {"input_index": np.asarray(index, dtype=np.int64), "record_json": np.asarray(out, dtype=object)}


# ------------------------------------------------------------------------------ connecting


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True) -> Iterator[None]:
    """Use a Ray instance for the ``with`` block: the running one (already initialised in this
    process), the cluster at ``address`` (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.5:6379"``), or a
    new local instance with ``num_cpus`` CPUs. Only an instance started here is shut down at the end."""
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus applies to a local Ray instance only, not to one at an address")
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING if quiet else logging.INFO}
    if address is not None:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------ the dataset


def tag_dataset(paths: Sequence[str | os.PathLike[str]], spec: TaggerConfig, *, first_index: int = 0,
                indices: Sequence[int] | None = None, batch_size: int = 16, num_actors: int | None = None,
                cpus_per_actor: float = 1.0, decode_threads: int = 1, max_pixels: int = 40_000_000
                ) -> ray.data.Dataset:
    """A (lazy) Ray dataset of tagged inputs: columns :data:`RESULT_COLUMNS`, one row per path.

    ``indices``: each path's position in the job's input list (default ``first_index + i``).
    ``num_actors``: size of the actor pool (default: the cluster's CPUs ÷ ``cpus_per_actor``); each
    actor reserves ``cpus_per_actor`` CPUs and, unless ``spec.threads`` says otherwise, runs inference
    on that many threads. Needs a running Ray instance (:func:`ray_session`).
    """
    ray = _ray()
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if cpus_per_actor <= 0:
        raise ValueError(f"cpus_per_actor must be positive, got {cpus_per_actor}")
    if indices is not None and len(indices) != len(paths):
        raise ValueError(f"expected one index per path, got {len(indices)} indices and {len(paths)} paths")
    if not paths:
        raise ValueError("nothing to tag: expected at least one path")
    if num_actors is None:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        num_actors = max(1, int(cpus // cpus_per_actor))
    if num_actors <= 0:
        raise ValueError(f"num_actors must be positive, got {num_actors}")
    if spec.threads is None:
        from dataclasses import replace

        spec = replace(spec, threads=max(1, int(cpus_per_actor)))
    index = list(indices) if indices is not None else list(range(first_index, first_index + len(paths)))
    items = [{"input_index": i, "path": str(p)} for i, p in zip(index, paths)]
    blocks = max(1, min(-(-len(items) // batch_size), 10_000))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    return ds.map_batches(TagActor, batch_size=batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=num_actors), num_cpus=cpus_per_actor,
                          fn_constructor_kwargs={"spec": spec, "batch_size": batch_size,
                                                 "decode_threads": decode_threads, "max_pixels": max_pixels,
                                                 "working_dir": os.getcwd()},
                          udf_modifying_row_count=False)


def arrow_schema() -> Any:
    """The Arrow schema (``pyarrow.Schema``) of :data:`fashionlens.jobs.store.PARQUET_COLUMNS`: the
    schema of the job's Parquet chunks. pyarrow comes with Ray Data (the ``ray`` extra); the core
    install writes Parquet through fastparquet."""
    import pyarrow as pa

    from fashionlens.jobs.store import PARQUET_COLUMNS

    return pa.schema([(name, getattr(pa, kind)()) for name, kind, _ in PARQUET_COLUMNS])


def _parquet_rows(batch: Mapping[str, np.ndarray]) -> Any:
    import pyarrow as pa

    from fashionlens.jobs.store import record_to_row

    rows = [record_to_row(json.loads(r), int(i)) for i, r in zip(batch["input_index"], batch["record_json"])]
    return pa.Table.from_pylist(rows, schema=arrow_schema())


def to_parquet_rows(tagged: ray.data.Dataset) -> ray.data.Dataset:
    """A tagged dataset (:func:`tag_dataset`) as rows of :data:`fashionlens.jobs.store.PARQUET_COLUMNS`,
    e.g. ``to_parquet_rows(ds).write_parquet("s3://bucket/run1")`` (written by the workers; row order
    across files is not the input order — sort by ``input_index``)."""
    return tagged.map_batches(_parquet_rows, batch_format="numpy", batch_size=None, udf_modifying_row_count=False)


def _iter_results(tagged: ray.data.Dataset) -> Iterator[tuple[int, dict[str, Any]]]:
    for batch in tagged.iter_batches(batch_size=None, batch_format="numpy"):
        for i, r in zip(batch["input_index"], batch["record_json"]):
            yield int(i), json.loads(r)


def iter_ray_records(paths: Sequence[str | os.PathLike[str]], spec: TaggerConfig, *, batch_size: int = 16,
                     num_actors: int | None = None, cpus_per_actor: float = 1.0, decode_threads: int = 1,
                     max_pixels: int = 40_000_000) -> Iterator[dict[str, Any]]:
    """One result record per path, in input order (results that arrive early wait in the driver).
    Needs a running Ray instance (:func:`ray_session`)."""
    tagged = tag_dataset(paths, spec, batch_size=batch_size, num_actors=num_actors, cpus_per_actor=cpus_per_actor,
                         decode_threads=decode_threads, max_pixels=max_pixels)
    waiting: dict[int, dict[str, Any]] = {}
    nxt = 0
    for i, record in _iter_results(tagged):
        waiting[i] = record
        while nxt in waiting:
            yield waiting.pop(nxt)
            nxt += 1
    if nxt != len(paths):
        raise RuntimeError(f"the Ray engine returned {nxt} of {len(paths)} records in order; "
                           f"missing from input {nxt}")


def _model_of(record: Mapping[str, Any]) -> dict[str, str]:
    model = record.get("model") or {}
    # the keys of Tagger.model_info, so that a job can be resumed by either engine
    return {k: model[k] for k in ("name", "version", "backend", "calibration", "operating_point", "object_types",
                                  "colours", "street_priors") if k in model}


def run_ray_job(job: TagJob, spec: TaggerConfig, *, batch_size: int = 16, num_actors: int | None = None,
                cpus_per_actor: float = 1.0, decode_threads: int = 1, max_pixels: int = 40_000_000
                ) -> JobRunStats:
    """Tag the job's pending chunks on Ray and commit each chunk (from this process, the job's
    owner) as soon as all its records are back; chunks may be committed out of order.

    The model is bound to the job (:meth:`~fashionlens.jobs.store.TagJob.bind_model`) from the first
    record that comes back, before anything is committed. Needs a running Ray instance.

    Raises:
        fashionlens.jobs.store.JobError: the job's earlier results came from another model.
    """
    from fashionlens.jobs.local import JobRunStats

    stats = JobRunStats()
    pending = job.pending_chunks()
    if not pending:
        return stats
    t0 = time.perf_counter()
    chunk_of: dict[int, int] = {}
    indices: list[int] = []
    for k in pending:
        start, stop = job.chunk_range(k)
        indices.extend(range(start, stop))
        chunk_of.update({i: k for i in range(start, stop)})
    tagged = tag_dataset([job.inputs[i] for i in indices], spec, indices=indices, batch_size=batch_size,
                         num_actors=num_actors, cpus_per_actor=cpus_per_actor, decode_threads=decode_threads,
                         max_pixels=max_pixels)
    waiting: dict[int, dict[int, dict[str, Any]]] = {k: {} for k in pending}
    bound = False
    for i, record in _iter_results(tagged):
        if not bound:
            job.bind_model(_model_of(record))
            bound = True
        k = chunk_of[i]
        waiting[k][i] = record
        start, stop = job.chunk_range(k)
        if len(waiting[k]) == stop - start:
            records = [waiting[k][j] for j in range(start, stop)]
            entry = job.commit_chunk(k, records)
            del waiting[k]
            stats.tagged += len(records)
            stats.failed += entry.failed
            stats.chunks += 1
    if waiting:
        missing = sorted(waiting)
        raise RuntimeError(f"the Ray engine did not return every record: chunks {missing[:5]} are incomplete")
    stats.seconds = time.perf_counter() - t0
    return stats


# ------------------------------------------------------------------------------ the tag command


def run_ray_tag_job(inputs: Sequence[str], *, spec: TaggerConfig, output: str | Path | IO[str] | None = "-",
                    ray_address: str | None = None, num_cpus: int | None = None, num_actors: int | None = None,
                    cpus_per_actor: float = 1.0, batch_size: int = 16, max_pixels: int = 40_000_000,
                    progress: bool = True, on_summary: Callable[[str], None] | None = None,
                    manifest: str | Path | None = None, job_dir: str | Path | None = None,
                    chunk_size: int | None = None, formats: Sequence[str] | None = None,
                    resume: bool = False) -> int:
    """:func:`fashionlens.jobs.local.run_tag_job` on Ray: the same inputs, outputs, job folder and exit
    code (0 = all tagged, 1 = some inputs are error records).

    ``ray_address``: an existing cluster (else a local instance with ``num_cpus`` CPUs, default all).
    Without ``job_dir`` the records go to ``output`` as JSON lines in input order.
    """
    from fashionlens.jobs.local import job_run_summary
    from fashionlens.jobs.store import TagJob, merge_job, resolve_inputs

    quiet = not progress
    _ray().data.DataContext.get_current().enable_progress_bars = progress
    if quiet:  # Ray Data logs its progress at INFO to stderr
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if job_dir is None:
        paths = [str(p) for p in resolve_inputs(inputs, manifest=manifest)]
        t0 = time.perf_counter()
        failed = 0
        backend = "?"
        with ray_session(ray_address, num_cpus=num_cpus, quiet=quiet), \
                open_text_output(output) as fh:
            for record in iter_ray_records(paths, spec, batch_size=batch_size, num_actors=num_actors,
                                           cpus_per_actor=cpus_per_actor, max_pixels=max_pixels):
                failed += record["error"] is not None
                backend = (record.get("model") or {}).get("backend", backend)
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                fh.flush()
        dt, n = time.perf_counter() - t0, len(paths)
        (on_summary or log.info)(f"tagged {n - failed}/{n} images ({failed} failed) in {dt:.1f} s "
                                 f"({n / dt if dt > 0 else 0:.1f} img/s, backend {backend}, engine ray)")
        return 1 if failed else 0

    paths_or_none = resolve_inputs(inputs, manifest=manifest) if inputs or manifest is not None or not resume else None
    with TagJob.open(job_dir, inputs=paths_or_none, settings=spec.job_settings(max_pixels=max_pixels),
                     chunk_size=chunk_size, formats=formats, resume=resume) as job:
        before = job.n_done
        stats = None
        if job.pending_chunks():
            with ray_session(ray_address, num_cpus=num_cpus, quiet=quiet):
                stats = run_ray_job(job, spec, batch_size=batch_size, num_actors=num_actors,
                                    cpus_per_actor=cpus_per_actor, max_pixels=max_pixels)
        (on_summary or log.info)(job_run_summary(job, stats, before=before, engine="engine ray"))
        total_failed = job.n_failed
    if output is not None and output != "-":
        merge_job(job_dir, output)
    return 1 if total_failed else 0
