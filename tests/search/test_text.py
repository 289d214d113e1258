"""The MiniLM text encoder (shipped ONNX export) loads and makes sense in a fresh process; the shipped
alignment heads pair with it (data test on ../shared: RISE/clothing test photos vs category prompts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared" / "datasets"


def test_minilm_loads_offline_and_makes_sense() -> None:
    code = (
        "import json; from fashionlens.search.text import load_text_encoder\n"
        "enc = load_text_encoder()\n"
        "e = enc.encode(['a red wool sweater', 'a crimson knitted jumper', 'black leather boots'])\n"
        "print(json.dumps({'shape': list(e.shape), 'norms': [float(x) for x in (e**2).sum(1)],"
        " 'near': float(e[0] @ e[1]), 'far': float(e[0] @ e[2])}))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["shape"] == [3, 384]
    assert all(abs(n - 1) < 1e-4 for n in r["norms"])
    assert r["near"] > r["far"]


def test_shipped_heads_fit_the_shipped_classifier() -> None:
    from fashionlens.models.alignment import load_alignment
    from fashionlens.runtime.backends import create_backend
    from fashionlens.search.text import load_text_encoder

    heads = load_alignment()
    backend = create_backend()  # the shipped classifier (ONNX Runtime where its export ships: no torch)
    meta = backend.meta
    side = meta.input_size
    garment_dim = backend.run(np.zeros((1, 3, side, side), np.float32), embed=True)["embedding"].shape[1]
    assert heads.meta.image_dim == garment_dim == 1280
    assert heads.meta.text_dim == load_text_encoder().dim == 384
    assert heads.meta.classifier["name"] == meta.name and heads.meta.classifier["version"] == meta.version
    assert 0 < heads.meta.temperature < 1 and heads.meta.metrics


@pytest.mark.data
@pytest.mark.skipif(not (SHARED / "rise" / "garments.jsonl").is_file(), reason="../shared/datasets/rise not present")
def test_prompts_find_the_category_of_held_out_rise_photos() -> None:
    from fashionlens.evaluate.search_report import zero_shot_scores
    from fashionlens.imageio import load_image
    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split
    from fashionlens.models.alignment import load_alignment
    from fashionlens.pipeline import Tagger

    test = [r for r in group_split(read_dataset("rise", SHARED), seed=0)["test"]
            if len(r.garments[0].categories) == 1][:30]
    tagger = Tagger(backend="onnx", embed=True)
    recs = tagger.tag_batch([load_image(r.path) for r in test], [str(r.path) for r in test])
    from fashionlens.result import decode_embedding

    x = np.stack([decode_embedding(rec["garments"][0]["embedding"]) for rec in recs])
    heads = load_alignment()
    cats = ["sweaters", "cardigans", "coats-jackets", "formal-jackets", "hoodies", "dresses", "jeans", "boots"]
    pred = zero_shot_scores(heads, heads.project_image(x), cats).argmax(1)
    truth = [r.garments[0].categories[0] for r in test]
    acc = np.mean([cats[p] == t for p, t in zip(pred, truth)])
    assert acc >= 0.6, acc
