"""The shipped text encoder on ONNX Runtime + tokenizers (issue 26): no torch needed.

What sentence-transformers would also do — shapes, unit norms, batching and padding that do not change
an embedding, truncation at 256 tokens — plus the run-time promises: no torch, transformers or
sentence-transformers is imported on the way to a text-search answer, and a missing file says what
to do. Parity with sentence-transformers itself is ``test_text_parity.py`` (train extra).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_text_index import build_fake_index

from fashionlens.runtime.text_export import (
    TEXT_ONNX_FILE,
    default_text_encoder_path,
    tokenizer_path_for,
)
from fashionlens.search.text import TEXT_DIM, TextEncoder, load_text_encoder

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers")


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return load_text_encoder()


def test_the_encoder_and_its_tokenizer_ship_in_the_package() -> None:
    onnx_path = default_text_encoder_path()
    assert onnx_path.name == TEXT_ONNX_FILE and onnx_path.parent.name == "weights"
    assert onnx_path.is_file() and tokenizer_path_for(onnx_path).is_file()


def test_shapes_and_unit_norms(encoder: TextEncoder) -> None:
    e = encoder.encode(["a red wool sweater", "black leather boots", ""])
    assert e.shape == (3, TEXT_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert load_text_encoder() is encoder  # one per process


def test_empty_input_and_wrong_types(encoder: TextEncoder) -> None:
    empty = encoder.encode([])
    assert empty.shape == (0, TEXT_DIM) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="one string"):
        encoder.encode("red dress")
    with pytest.raises(TypeError, match="expected strings"):
        encoder.encode(["red dress", None])  # type: ignore[list-item]


def test_batching_and_padding_do_not_change_an_embedding(encoder: TextEncoder) -> None:
    texts = ["jumper", "a photo of a loose red striped wool sweater with long sleeves", "blue jeans",
             "green cotton t-shirt, product photo", "hat"]
    together = encoder.encode(texts)                       # one padded batch
    pairs = encoder.encode(texts, batch_size=2, threads=2)  # other padding, another session
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(pairs, alone, atol=1e-5)


def test_long_texts_are_truncated_at_256_tokens(encoder: TextEncoder) -> None:
    # [CLS] + 254 words + [SEP] fill the 256 positions: more words are cut off, fewer are not
    e = encoder.encode(["sweater " * 254, "sweater " * 600, "sweater " * 100])
    np.testing.assert_allclose(e[0], e[1], atol=1e-6)
    assert float(e[0] @ e[2]) < 1 - 1e-6


def test_a_query_is_nearest_to_the_caption_that_means_it(encoder: TextEncoder) -> None:
    captions = ["a photo of a red knitted sweater", "blue denim jeans", "black leather ankle boots",
                "a floral summer dress", "a grey hooded sweatshirt"]
    c = encoder.encode(captions)
    for query, want in [("red wool sweater", 0), ("knitwear", 0), ("denim trousers", 1), ("leather shoes", 2),
                        ("hoodie", 4), ("flowery frock", 3)]:
        sims = c @ encoder.encode([query])[0]
        assert int(np.argmax(sims)) == want, (query, sims.round(3).tolist())


def test_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"network \(ONNX\) is missing: .*export onnx --text-encoder"):
        TextEncoder(tmp_path / TEXT_ONNX_FILE)
    lone = Path(shutil.copy(default_text_encoder_path(), tmp_path / "lone.onnx"))
    with pytest.raises(FileNotFoundError, match=r"tokenizer is missing: .*lone\.tokenizer\.json"):
        TextEncoder(lone)


def test_text_search_imports_no_torch(tmp_path: Path) -> None:
    """A fresh process answers a text query through the library and through the CLI with the real
    encoder, and none of torch, transformers, sentence-transformers was imported on the way."""
    index_dir, heads = build_fake_index(tmp_path)
    code = (
        "import json, sys\n"
        "from fashionlens.search.catalogue import GarmentSearcher\n"
        f"with GarmentSearcher({str(index_dir)!r}, alignment={str(heads)!r}) as s:\n"
        "    hits = s.query_text('red wool jumper', k=3).hits\n"
        "from fashionlens.cli import main\n"
        f"code = main(['search', '--index', {str(index_dir)!r}, '--alignment', {str(heads)!r},"
        " '--text', 'red dress', '-k', '2'])\n"
        f"print(json.dumps({{'hits': len(hits), 'code': code, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r == {"hits": 3, "code": 0, "heavy": []}
