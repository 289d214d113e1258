"""Int8 quantisation of the classifier's ONNX export (ONNX Runtime's ``onnxruntime.quantization``).

Lab code (was ``fashionlens.runtime.onnx_quantize``): measured, not shipped, and no command uses it
(``docs/performance.md``: -3.8 points category accuracy, no faster on this CPU). Import it with this
folder on ``sys.path`` (``benchmarks/bench_scale.py --int8-sweep`` does); its tests are
``experiments/scripts/test_onnx_quantize.py``.

An opt-in speed lever for CPU inference, not the default: the quantised graph is written next to
the float export as ``<name>.int8.onnx`` and is used only when asked for by path
(``Tagger(weights="….int8.onnx")`` / ``fashionlens tag --weights ….int8.onnx``). It keeps the float
export's ``fashionlens_meta`` metadata (heads, vocabularies, preprocessing), so every backend reads
it the same way, and records how it was made under ``fashionlens_quantization``.

Two modes:

* ``static``: weights *and* activations int8 (QDQ format, fused into ``QLinearConv`` by ONNX
  Runtime); activation ranges come from calibration photos run through the float model.
* ``dynamic``: weights int8, activation ranges computed per batch at run time (no calibration).

On x86 CPUs without VNNI, ONNX Runtime's u8s8 kernels can saturate (``VPMADDUBSW``); ``reduce_range``
(7-bit weights) or ``weight_type="uint8"`` avoid that at some cost in precision. Whether a
quantised model keeps its accuracy must be measured (``fashionlens evaluate classifier --weights
….int8.onnx``); see ``docs/performance.md`` for the measured trade-off.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

QuantMode = Literal["static", "dynamic"]
CalibrationMethod = Literal["minmax", "percentile", "entropy"]
WeightType = Literal["int8", "uint8"]

#: metadata key of the classifier meta (written by :func:`fashionlens.runtime.onnx_export.export_classifier_onnx`)
META_KEY = "fashionlens_meta"
#: metadata key recording the quantisation settings of a quantised export
QUANT_KEY = "fashionlens_quantization"

_MODES = ("static", "dynamic")
_METHODS = ("minmax", "percentile", "entropy")
_WEIGHT_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class QuantizeSettings:
    """How to quantise.

    ``mode``: ``static`` (weights + activations, needs calibration images) or ``dynamic``
    (weights only). ``per_channel``: one weight scale per output channel (recommended for
    depthwise convolutions). ``calibration_method``: how activation ranges are chosen from the
    calibration run (static only). ``weight_type``: ``int8`` (u8s8 kernels) or ``uint8`` (u8u8).
    ``reduce_range``: 7-bit weights, avoiding u8s8 saturation on CPUs without VNNI.
    ``keep_float_ops``: operator types left in float32 (e.g. ``("Gemm",)`` keeps the heads float).
    ``keep_float_first_conv``: leave the stem convolution (3 input channels) in float32.
    """

    mode: QuantMode = "static"
    per_channel: bool = True
    calibration_method: CalibrationMethod = "minmax"
    weight_type: WeightType = "int8"
    reduce_range: bool = False
    keep_float_ops: tuple[str, ...] = ()
    keep_float_first_conv: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (("mode", self.mode, _MODES),
                                     ("calibration_method", self.calibration_method, _METHODS),
                                     ("weight_type", self.weight_type, _WEIGHT_TYPES)):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
        if isinstance(self.keep_float_ops, str):
            raise TypeError(f"keep_float_ops: expected a tuple of operator types, got the string "
                             f"{self.keep_float_ops!r}")


def int8_path_for(onnx_path: str | Path) -> Path:
    """Where the int8 version of an ONNX export lives: ``model.onnx`` → ``model.int8.onnx``."""
    p = Path(onnx_path)
    if p.suffix != ".onnx":
        raise ValueError(f"expected an .onnx file, got {p}")
    return p.with_name(p.stem + ".int8.onnx")


def read_quantization_info(onnx_path: str | Path) -> dict[str, object] | None:
    """The ``fashionlens_quantization`` settings of an export, or ``None`` for a float export."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map.get(QUANT_KEY)
    return None if raw is None else json.loads(raw)


class _Batches:
    """``onnxruntime.quantization.CalibrationDataReader`` over preprocessed float32 batches."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._input_name = input_name
        self._batches = batches
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def _read_meta(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def calibration_batches(images: Sequence[np.ndarray], meta_json: str, *, batch_size: int = 16) -> list[np.ndarray]:
    """``H×W×3`` uint8 images → preprocessed float32 batches exactly as the Tagger feeds the model."""
    from fashionlens.models.meta import ClassifierMeta
    from fashionlens.pipeline import preprocess

    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    meta = ClassifierMeta.from_dict(json.loads(meta_json))
    arrays = []
    for k, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"calibration image {k}: expected an H×W×3 uint8 array, got shape {im.shape} "
                             f"dtype {im.dtype}")
        arrays.append(preprocess(im, meta))
    return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]


def quantize_classifier_onnx(onnx_path: str | Path | None = None, output: str | Path | None = None, *,
                             calibration_images: Sequence[np.ndarray] | None = None,
                             settings: QuantizeSettings = QuantizeSettings()) -> Path:
    """Write an int8 version of a classifier ONNX export (default: the shipped one) and return its path.

    ``output`` defaults to :func:`int8_path_for` of the input. ``calibration_images`` (``H×W×3``
    uint8 photos or garment crops, preprocessed like the Tagger does) are required for
    ``settings.mode == "static"`` and ignored for ``dynamic``. The written file carries the input's
    ``fashionlens_meta`` and the settings under ``fashionlens_quantization``.

    Raises:
        FileNotFoundError: the input export does not exist.
        ValueError: not a fashionlens classifier export, or static mode without calibration images.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod as OrtCalibrationMethod,
    )
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if onnx_path is None:
        from fashionlens.models.registry import default_weights_path
        from fashionlens.runtime.backends import onnx_path_for

        onnx_path = onnx_path_for(default_weights_path())
    src = Path(onnx_path)
    if not src.is_file():
        raise FileNotFoundError(f"no ONNX export at {src}; run: fashionlens export onnx")
    proto = onnx.load(str(src))
    metadata = _read_meta(proto)
    if META_KEY not in metadata:
        raise ValueError(f"{src}: not a fashionlens classifier export (no {META_KEY} metadata)")
    if QUANT_KEY in metadata:
        raise ValueError(f"{src}: already quantised ({metadata[QUANT_KEY]}); quantise the float export")
    if settings.mode == "static" and not calibration_images:
        raise ValueError("static quantisation needs calibration_images (H×W×3 uint8 photos); got none "
                         "(or use QuantizeSettings(mode='dynamic'))")
    out = Path(output) if output is not None else int8_path_for(src)
    input_name = proto.graph.input[0].name

    keep = set(settings.keep_float_ops)
    exclude = [n.name for n in proto.graph.node if n.op_type in keep]
    if settings.keep_float_first_conv:
        first_conv = next((n.name for n in proto.graph.node if n.op_type == "Conv"), None)
        if first_conv is not None:
            exclude.append(first_conv)
    del proto
    op_types = sorted({"Conv", "Gemm", "MatMul"} - keep)
    weight_type = QuantType.QInt8 if settings.weight_type == "int8" else QuantType.QUInt8

    with tempfile.TemporaryDirectory(prefix="fashionlens_quant_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shape inference + constant folding (folds the graph's dynamic "same" padding arithmetic);
        # node names survive, so ``exclude`` still applies
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantised = Path(tmp) / "quantised.onnx"
        if settings.mode == "dynamic":
            quantize_dynamic(str(prepared), str(quantised), per_channel=settings.per_channel,
                             reduce_range=settings.reduce_range, weight_type=weight_type,
                             op_types_to_quantize=op_types, nodes_to_exclude=exclude)
        else:
            meta_json = metadata[META_KEY]
            # the histogram collectors stack per-run arrays, so every calibration batch must have the
            # same size: one image per run for them, batches of 16 for min/max
            per_run = 16 if settings.calibration_method == "minmax" else 1
            reader = _Batches(input_name, calibration_batches(calibration_images or [], meta_json,
                                                              batch_size=per_run))
            method = {"minmax": OrtCalibrationMethod.MinMax, "percentile": OrtCalibrationMethod.Percentile,
                      "entropy": OrtCalibrationMethod.Entropy}[settings.calibration_method]
            quantize_static(str(prepared), str(quantised), reader, quant_format=QuantFormat.QDQ,
                            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=weight_type,
                            calibrate_method=method, op_types_to_quantize=op_types, nodes_to_exclude=exclude,
                            extra_options={"CalibMovingAverage": False})
        result = onnx.load(str(quantised))
        del result.metadata_props[:]
        for key, value in metadata.items():
            entry = result.metadata_props.add()
            entry.key, entry.value = key, value
        info = {**asdict(settings), "source": src.name,
                "calibration_images": len(calibration_images or []) if settings.mode == "static" else 0,
                "excluded_nodes": len(exclude)}
        info["keep_float_ops"] = list(settings.keep_float_ops)
        entry = result.metadata_props.add()
        entry.key, entry.value = QUANT_KEY, json.dumps(info)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".tmp")
        onnx.save(result, str(partial))
        partial.replace(out)
    log.info("quantised %s → %s (%s)", src, out, settings)
    return out
