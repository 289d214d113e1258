"""The Ray engine (``tag --engine ray``) against the local engine: the same records apart from timings,
the same job folder (chunks, Parquet rows, resume — also across engines), and Parquet written by the
workers. One local Ray instance (2 CPUs) serves the whole module; skipped when ray is not installed."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[data]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

from fashionlens.jobs.store import (
    JOB_FILE,
    JobError,
    TagJob,
    iter_job_records,
    job_status,
    read_chunk_file,
    record_to_row,
)
from fashionlens.cli import main
from fashionlens.pipeline import TaggerConfig
from fashionlens.jobs.ray import (
    arrow_schema,
    iter_ray_records,
    ray_session,
    run_ray_job,
    tag_dataset,
    to_parquet_rows,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[float]:
    """A local Ray instance with 2 CPUs for the module; yields the seconds ``ray.init`` took."""
    t0 = time.perf_counter()
    with ray_session(num_cpus=2):
        yield time.perf_counter() - t0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """10 generated photos (JPEG and PNG, 40–120 px, a coloured block on a plain ground), a missing
    file and a file that is not an image, as absolute paths."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        h, w = (int(v) for v in rng.integers(40, 120, 2))
        rgb = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
        rgb[h // 4:3 * h // 4, w // 4:3 * w // 4] = rng.integers(0, 256, 3)
        path = folder / f"{i:02d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rgb).save(path)
        paths.append(str(path))
    (folder / "notes.jpg").write_bytes(b"not an image at all")
    return paths[:4] + [str(folder / "missing.jpg")] + paths[4:7] + [str(folder / "notes.jpg")] + paths[7:]


def _without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "timing_ms"} for r in records]


def _tag(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, JSON lines written to stdout and stderr of ``fashionlens tag ARGS`` (ONNX, 1 thread)."""
    code = main(["tag", *args, "-q", "--backend", "onnx", "--threads", "1"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture(scope="module")
def local_records(inputs: list[str]) -> list[dict[str, Any]]:
    """What the local engine writes for ``inputs`` (whole-image mode, ONNX backend, the operating point that
    ``fashionlens tag`` uses by default)."""
    from fashionlens.jobs.local import run_tag_job

    out = io.StringIO()
    code = run_tag_job(inputs, output=out, backend="onnx", threads=1, whole_image=True, progress=False,
                       precision=0.9)  # `tag --precision` default
    assert code == 1  # the missing file and the non-image are error records
    return [json.loads(line) for line in out.getvalue().splitlines()]


# ------------------------------------------------------------------------------ same records


def test_cli_ray_engine_matches_the_local_engine(local_ray: float, inputs: list[str], local_records: list[dict],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, records, err = _tag([*inputs, "--whole-image", "--engine", "ray", "--ray-actors", "2", "--batch-size", "3"],
                         capsys)
    assert code == 1 and "tagged 10/12 images (2 failed)" in err and "engine ray" in err
    assert [r["image"]["path"] for r in records] == inputs  # input order, one record each
    assert _without_timing(records) == _without_timing(local_records)
    assert [r["error"]["type"] if r["error"] else None for r in records].count(None) == 10
    assert all(set(r["timing_ms"]) >= {"infer", "decode"} for r in records if r["error"] is None)


def test_detection_mode_matches(local_ray: float, inputs: list[str], upper_body_detector: Any) -> None:
    from fashionlens.detection.detector import DetectSettings
    from fashionlens.jobs.local import tag_paths

    spec = TaggerConfig(backend="onnx", threads=1, detector=str(upper_body_detector.path),
                        detector_backend=upper_body_detector.backend, detect_settings=DetectSettings(rules=("duplicates",)))
    paths = inputs[:5]
    local = list(tag_paths(spec.build(), [Path(p) for p in paths], batch_size=4, progress=False))
    on_ray = list(iter_ray_records(paths, spec, batch_size=4, num_actors=1))
    assert _without_timing(on_ray) == _without_timing(local)
    detected = [r for r in on_ray if r["error"] is None]
    assert detected and all(r["mode"] == "detect" and r["garments"] for r in detected)
    assert all(g["object_type"] == "upper-body" and g["mask"] is not None for r in detected for g in r["garments"])
    assert all(r["model"]["detector"] == "tiny-detector" for r in on_ray if r["error"] is None)


# ------------------------------------------------------------------------------ jobs


def test_job_folder_and_resume_across_engines(local_ray: float, inputs: list[str], local_records: list[dict],
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job"
    common = ["--whole-image", "--job-dir", str(job), "--chunk-size", "3"]
    assert _tag([*inputs, *common], capsys)[0] == 1  # the local engine does the whole job …
    manifest = json.loads((job / JOB_FILE).read_text())
    local_parquet = read_chunk_file(job / manifest["chunks"][0]["files"]["parquet"]["name"])
    manifest["chunks"] = manifest["chunks"][:2]  # … then "forgets" chunks 2 and 3, as if killed before they committed
    (job / JOB_FILE).write_text(json.dumps(manifest))

    merged = tmp_path / "all.parquet"
    code, _, err = _tag([*common, "--resume", "--engine", "ray", "--ray-actors", "1", "-o", str(merged)], capsys)
    assert code == 1 and "tagged 5/6 images (1 failed)" in err and "12/12 inputs done (6 before this run)" in err
    status = job_status(job, verify=True)
    assert status.complete and status.problems == [] and status.uncommitted_files == []
    assert (status.n_done, status.n_failed, status.chunks_committed) == (12, 2, 4)
    assert _without_timing(list(iter_job_records(job))) == _without_timing(local_records)
    assert _without_timing(list(iter_job_records(job, fmt="parquet"))) == _without_timing(local_records)
    assert _without_timing(read_chunk_file(job / manifest["chunks"][0]["files"]["parquet"]["name"])) == \
        _without_timing(local_parquet)
    import pyarrow.parquet as pq

    table = pq.read_table(merged)
    assert table.column("input_index").to_pylist() == list(range(12))
    assert table.column("path").to_pylist() == inputs

    # and a job started by the Ray engine is resumed by the local one: the settings are the same
    code, _, err = _tag([*common, "--resume"], capsys)
    assert code == 1 and err.startswith("fashionlens: nothing left to tag; job")


def test_a_job_of_another_model_is_refused_before_any_commit(local_ray: float, inputs: list[str],
                                                              tmp_path: Path) -> None:
    spec = TaggerConfig(backend="onnx", threads=1, whole_image=True)
    settings = spec.job_settings(max_pixels=40_000_000)
    with TagJob.open(tmp_path / "job", inputs=inputs[:4], settings=settings, chunk_size=2) as job:
        job.bind_model({"name": "another-model", "version": "1", "backend": "onnx"})
    with TagJob.open(tmp_path / "job", inputs=inputs[:4], settings=settings, resume=True) as job:
        with pytest.raises(JobError, match="another model"):
            run_ray_job(job, spec, batch_size=2, num_actors=1)
        assert job.n_done == 0 and job.pending_chunks() == [0, 1]


def test_parquet_rows_written_by_the_workers(local_ray: float, inputs: list[str], local_records: list[dict],
                                             tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    spec = TaggerConfig(backend="onnx", threads=1, whole_image=True, precision=0.9)  # as local_records
    to_parquet_rows(tag_dataset(inputs, spec, batch_size=4, num_actors=1)).write_parquet(str(tmp_path / "out"))
    table = pq.read_table(tmp_path / "out").sort_by("input_index")
    assert table.schema == arrow_schema()
    expected = [record_to_row(r, i) for i, r in enumerate(local_records)]
    for name in table.schema.names:
        if name != "timing_ms_json":
            assert table.column(name).to_pylist() == [row[name] for row in expected], name


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tensorrt"}, "backend: expected auto, onnx or torch, got 'tensorrt'"),
    ({"detector_backend": "gpu"}, "detector_backend: expected auto, onnx or torch, got 'gpu'"),
    ({"threads": 0}, "threads: expected a positive number or None, got 0"),
])
def test_tagger_spec_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaggerConfig(**kwargs)


def test_job_settings_are_the_local_engines(tmp_path: Path) -> None:
    from fashionlens.detection.detector import DetectSettings

    assert TaggerConfig(whole_image=True).job_settings(max_pixels=10) == {
        "weights": None, "backend": "auto", "whole_image": True, "embed": False, "max_pixels": 10,
        "detector": None, "detector_backend": None, "detect_settings": None}
    detect = TaggerConfig(weights=str(tmp_path / "w.pt"), detector="d.pt").job_settings(max_pixels=10)
    assert detect["detect_settings"] == TaggerConfig(
        detect_settings=DetectSettings()).job_settings(max_pixels=10)["detect_settings"]
    assert (detect["detector"], detect["detector_backend"]) == ("d.pt", "auto")
    assert detect["weights"] == str(tmp_path / "w.pt")


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be positive, got 0"),
    ({"cpus_per_actor": 0}, "cpus_per_actor must be positive, got 0"),
    ({"indices": [0]}, "expected one index per path, got 1 indices and 2 paths"),
    ({"num_actors": 0}, "num_actors must be positive, got 0"),
])
def test_tag_dataset_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tag_dataset(["a.jpg", "b.jpg"], TaggerConfig(whole_image=True), **kwargs)


def test_tag_dataset_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="expected at least one path"):
        tag_dataset([], TaggerConfig(whole_image=True))


@pytest.mark.parametrize("args, message", [
    (["--engine", "ray", "--render", "out"], "--render is not available with --engine ray"),
    (["--ray-address", "auto"], "--ray-address and --ray-actors need --engine ray"),
    (["--ray-actors", "2"], "--ray-address and --ray-actors need --engine ray"),
    (["--engine", "spark"], "invalid choice: 'spark'"),
])
def test_cli_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "photo.jpg", "--whole-image", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_ray_session_address_with_num_cpus_is_refused() -> None:
    with pytest.raises(ValueError, match="num_cpus applies to a local Ray instance only"), \
            ray_session("auto", num_cpus=2):
        pass
