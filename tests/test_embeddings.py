"""Garment embeddings in result records: encoding round trip, errors, and ``Tagger(embed=True)``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashionlens.result import decode_embedding, encode_embedding, l2_normalise
from fashionlens.imageio import DecodedImage
from fashionlens.models.meta import EMBEDDING_OUTPUT


def _unit(d: int, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal(d))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(dtype: str) -> None:
    v = _unit(1280)
    enc = encode_embedding(v, dtype=dtype)
    assert enc["dim"] == 1280 and enc["dtype"] == dtype and enc["encoding"] == "base64"
    back = decode_embedding(json.loads(json.dumps(enc)))
    assert back.dtype == np.float32 and back.shape == (1280,)
    np.testing.assert_allclose(back, v, atol=1e-3 if dtype == "float16" else 0)
    assert abs(float(back @ v) - 1.0) < 1e-3
    if dtype == "float16":
        assert len(enc["data"]) == 3416  # 2560 bytes in base64


def test_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected a dict"):
        decode_embedding("text")  # type: ignore[arg-type]


def test_plain_list_is_accepted() -> None:
    np.testing.assert_array_equal(decode_embedding([0.6, 0.8]), np.array([0.6, 0.8], np.float32))


@pytest.mark.parametrize(("obj", "message"), [
    ({"dim": 3, "dtype": "float16"}, "missing"),
    ({"dim": 3, "dtype": "int8", "data": ""}, "dtype"),
    ({"dim": 3, "dtype": "float16", "data": "!!"}, "base64"),
    ({"dim": 4, "dtype": "float16", "data": encode_embedding(np.ones(3))["data"]}, "expected 4 values"),
    ([], "non-empty"),
])
def test_decode_errors(obj: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_embedding(obj)  # type: ignore[arg-type]


@pytest.mark.parametrize(("vec", "message"), [(np.zeros((2, 2)), "1-D"), (np.array([np.nan]), "finite")])
def test_encode_errors(vec: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_embedding(vec)
    with pytest.raises(ValueError, match="dtype"):
        encode_embedding(np.ones(3), dtype="float64")


def test_l2_normalise_keeps_zero_rows() -> None:
    x = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])


def _decoded(rgb: np.ndarray) -> DecodedImage:
    return DecodedImage(rgb=rgb, width=rgb.shape[1], height=rgb.shape[0], scale=1.0, format="PNG", mode="RGB")


def test_tagger_stores_embeddings_only_when_asked() -> None:
    from fashionlens.pipeline import Tagger

    rng = np.random.default_rng(0)
    images = [_decoded(rng.integers(0, 256, (64 + 16 * i, 48, 3), dtype=np.uint8)) for i in range(3)]
    plain = Tagger(backend="onnx", threads=1)
    embed = Tagger(backend="onnx", threads=1, embed=True)
    recs_plain = plain.tag_batch(images, ["a.png", "b.png", "c.png"])
    recs = embed.tag_batch(images, ["a.png", "b.png", "c.png"])
    assert all("embedding" not in r["garments"][0] for r in recs_plain)
    vecs = [decode_embedding(r["garments"][0]["embedding"]) for r in recs]
    assert all(v.shape == (1280,) and abs(np.linalg.norm(v) - 1) < 2e-3 for v in vecs)
    # the embedding is the backend's, to float16 precision
    from fashionlens.pipeline import preprocess

    direct = embed.backend.run(np.stack([preprocess(im.rgb, embed.meta) for im in images]), embed=True)[EMBEDDING_OUTPUT]
    np.testing.assert_allclose(np.stack(vecs), direct, atol=1e-3)
    # everything else in the records is unchanged
    for a, b in zip(recs_plain, recs):
        ga, gb = a["garments"][0], dict(b["garments"][0])
        gb.pop("embedding")
        assert ga == gb


def test_detected_garments_each_get_an_embedding(upper_body_detector, one_thread) -> None:
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.pipeline import Tagger

    rng = np.random.default_rng(1)
    image = _decoded(rng.integers(0, 256, (160, 120, 3), dtype=np.uint8))
    tagger = Tagger(backend="onnx", threads=1, embed=True,
                    detector=GarmentDetector(upper_body_detector.path, backend=upper_body_detector.backend))
    [rec] = tagger.tag_batch([image], ["x.png"])
    assert rec["mode"] == "detect" and rec["garments"]
    for g in rec["garments"]:
        v = decode_embedding(g["embedding"])
        assert v.shape == (1280,) and abs(np.linalg.norm(v) - 1) < 2e-3
