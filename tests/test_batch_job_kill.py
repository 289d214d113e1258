"""The kill test of issue 8, part 3: the real ``fashionlens tag --job-dir … --resume`` CLI, started as a
subprocess on generated photos, is SIGKILLed at random points several times and resumed each time; the
final output must hold every input exactly once and every committed chunk must be readable.

The trial itself is ``tests/kill_resume.py`` (``run_trial``); this test runs it with ``KILLS`` kills
(the script's default, 20, is the full version) and checks the job folder on its own as well.
Whole-image mode starts in about 1–2 s, so the test takes roughly (KILLS + 2) × 2 s."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from fashionlens.jobs.store import read_chunk_file
from fashionlens.imageio import iter_image_paths

KILLS = 5
SCRIPT = Path(__file__).with_name("kill_resume.py")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and flock: Linux only")


def _load_script():
    spec = importlib.util.spec_from_file_location("kill_resume", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kills", [KILLS])
def test_sigkilled_job_loses_and_repeats_nothing(kills: int, tmp_path: Path) -> None:
    summary = _load_script().run_trial(tmp_path, n_images=40, kills=kills, chunk_size=2, batch_size=2, seed=1)

    assert summary["sigkills"] == kills, summary  # every kill landed before the job finished
    assert set(summary["kills_by_kind"]) == {"startup", "working"}, summary
    assert (summary["lost"], summary["duplicated"], summary["unexpected"]) == (0, 0, 0), summary
    assert summary["problems"] == [] and summary["complete"], summary
    assert summary["differences_from_uninterrupted_run"] == 0, summary

    # the job folder, checked here without the library's own status/merge code
    job = tmp_path / "job"
    manifest = json.loads((job / "job.json").read_text())
    inputs = [str(p) for p in iter_image_paths([tmp_path / "images"])]
    assert len(inputs) == 42 and manifest["inputs"]["count"] == 42
    ranges = sorted((c["start"], c["stop"]) for c in manifest["chunks"])
    assert ranges == [(i, min(i + 2, 42)) for i in range(0, 42, 2)]
    paths: list[str] = []
    for chunk in sorted(manifest["chunks"], key=lambda c: c["start"]):
        jsonl = read_chunk_file(job / chunk["files"]["jsonl"]["name"])
        assert read_chunk_file(job / chunk["files"]["parquet"]["name"]) == jsonl
        paths += [r["image"]["path"] for r in jsonl]
    assert paths == inputs
    assert max(Counter(paths).values()) == 1
    listed = {f["name"] for c in manifest["chunks"] for f in c["files"].values()}
    assert {f"chunks/{p.name}" for p in (job / "chunks").iterdir()} == listed  # no leftovers
