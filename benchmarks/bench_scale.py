"""Issue 8 benchmarks side by side: whole-image tagging, the detection pipeline and the reference
Mask R-CNN, torch vs ONNX, 1 vs 2 threads, with the compute floor.

What runs (each configuration in a fresh subprocess, so its peak RSS is its own; repeats
interleaved — repeat ``r`` of every configuration before ``r + 1`` of any — and medians reported):

* ``whole/<backend>/<threads>``: ``fashionlens tag --whole-image`` as users run it
  (:func:`fashionlens.jobs.local.tag_paths`: decode threads, batches of 16, colour shares, plus the
  JSON line), on the first ``--whole-limit`` clothing photos (352×470). ``onnx-int8`` is the
  opt-in int8 classifier (``--int8 PATH``, see ``experiments/scripts/onnx_quantize.py``).
* ``detect/<backend>/<threads>``: the full detection pipeline (decode → detector at 384 px →
  crops → classifier → colours → RLE masks → JSON line) on the first ``--limit`` CCP street
  photos (825×550); the backend applies to detector network and classifier alike.
* ``maskrcnn/<variant>/<threads>``: the reference a user would otherwise reach for —
  torchvision's ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``, random weights
  (seeded), 7 classes, ``min_size = max_size = 384`` like our detector, on the same photos,
  decoded the same way, masks thresholded at 0.5. ``default`` keeps torchvision's
  ``box_detections_per_img=100`` (random weights fill it, so its mask head runs 100 times);
  ``cap5`` caps it at 5 detections, about what our detector finds per photo — the fair (and for us
  the harder) comparison.

Then, in this process: model FLOPs (``torch.utils.flop_counter.FlopCounterMode``: classifier at
224 px, our detector and the reference on a real photo) and the machine's peak float32 GEMM
GFLOP/s on 1 and 2 threads (torch and NumPy, each in a fresh subprocess), giving the compute floor
and the share of peak each configuration achieves. ``--profile`` adds a serial stage-by-stage
breakdown of the detection pipeline and a cProfile of ``tag_paths``.

Usage (from the project root; about 12 minutes with the defaults)::

    .venv/bin/python benchmarks/bench_scale.py --json runs/bench_scale.json --profile
    .venv/bin/python benchmarks/bench_scale.py --only whole/onnx/2,detect/onnx/2,maskrcnn/cap5/2 --repeats 1
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tag import image_list, machine  # the sibling benchmark's helpers

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "datasets"
CCP_PHOTOS = SHARED / "ccp" / "photos"
CLOTHING_PHOTOS = SHARED / "clothing" / "images"

#: kind/variant/threads
CONFIGS: list[str] = [
    "whole/onnx/1", "whole/onnx/2", "whole/torch/1", "whole/torch/2", "whole/onnx-int8/1", "whole/onnx-int8/2",
    "detect/onnx/1", "detect/onnx/2", "detect/torch/1", "detect/torch/2", "detect/onnx-int8/2",
    "maskrcnn/cap5/1", "maskrcnn/cap5/2", "maskrcnn/default/2",
]
#: ``--levers``: whole-image tagging variations (kind/backend/threads/options): ``bN`` batch size,
#: ``dN`` decode threads, ``nospin`` ONNX Runtime workers that sleep instead of spinning, ``noarena``
#: no CPU memory arena; ``model/...`` is the network alone on in-memory batches (no decoding)
LEVER_CONFIGS: list[str] = [
    "whole/onnx/2/b16/d2", "whole/onnx/2/b32/d2", "whole/onnx/2/b16/d1", "whole/onnx/2/b16/d2/nospin",
    "whole/onnx/1/b16/d2", "whole/onnx-int8/2/b16/d2", "whole/onnx-int8/1/b16/d2",
    "model/onnx/2/b16", "model/onnx/1/b16", "model/onnx-int8/2/b16", "model/onnx-int8/1/b16",
]
REFERENCE_SIZE = 384

#: ``--int8-sweep``: quantisation variants tried (name → QuantizeSettings keyword arguments)
INT8_VARIANTS: dict[str, dict[str, Any]] = {
    "static-s8": {},
    "static-s8-reduce": {"reduce_range": True},
    "static-u8": {"weight_type": "uint8"},
    "static-s8-floatends": {"keep_float_ops": ("Gemm",), "keep_float_first_conv": True},
    "static-s8-reduce-floatends": {"reduce_range": True, "keep_float_ops": ("Gemm",), "keep_float_first_conv": True},
    "static-s8-reduce-pct": {"reduce_range": True, "calibration_method": "percentile"},
    "dynamic-s8-reduce": {"mode": "dynamic", "reduce_range": True},
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _paths(list_file: str) -> list[Path]:
    return [Path(line) for line in Path(list_file).read_text().splitlines() if line]


# ------------------------------------------------------------------------------------ workers


def _tagger(kind: str, backend: str, threads: int, int8: str | None) -> Any:
    from fashionlens.pipeline import Tagger

    detector = None
    if kind == "detect":
        from fashionlens.detection.detector import GarmentDetector

        detector = GarmentDetector(threads=threads, backend="torch" if backend == "torch" else "onnx")
    if backend == "onnx-int8":
        if not int8:
            raise SystemExit("bench_scale: onnx-int8 configurations need --int8 PATH")
        return Tagger(int8, threads=threads, detector=detector)
    return Tagger(backend=backend, threads=threads, detector=detector)


def _options(opts: list[str], *, batch_size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"batch_size": batch_size, "decode_threads": 2, "spinning": True, "arena": True}
    for o in opts:
        if o.startswith("b") and o[1:].isdigit():
            out["batch_size"] = int(o[1:])
        elif o.startswith("d") and o[1:].isdigit():
            out["decode_threads"] = int(o[1:])
        elif o in ("nospin", "noarena"):
            out["spinning" if o == "nospin" else "arena"] = False
        else:
            raise SystemExit(f"bench_scale: unknown option {o!r} (expected bN, dN, nospin, noarena)")
    return out


def _reopen_session(tagger: Any, threads: int, *, spinning: bool, arena: bool) -> None:
    """Replace the classifier's ONNX Runtime session by one with other session options."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = arena
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = tagger.backend._path
    tagger.backend.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def work_model(backend: str, threads: int, opts: list[str], int8: str | None, n: int = 256) -> dict[str, Any]:
    """The classifier network alone: normalised random batches already in memory, images/s."""
    import numpy as np

    o = _options(opts, batch_size=16)
    tagger = _tagger("whole", backend, threads, int8)
    size = tagger.meta.input_size
    batch = np.random.default_rng(0).standard_normal((o["batch_size"], 3, size, size)).astype(np.float32)
    tagger.backend.run(batch)
    t0 = time.perf_counter()
    runs = max(1, n // o["batch_size"])
    for _ in range(runs):
        tagger.backend.run(batch)
    dt = time.perf_counter() - t0
    return {"images": runs * o["batch_size"], "seconds": dt, "images_per_s": runs * o["batch_size"] / dt,
            "load_s": 0.0, "garments_per_image": 1.0, "mean_timing_ms": {"infer": dt * 1000 / (runs * o["batch_size"])}}


def work_tag(kind: str, backend: str, threads: int, list_file: str, batch_size: int, int8: str | None,
             opts: list[str] | None = None) -> dict[str, Any]:
    import numpy as np

    from fashionlens.jobs.local import tag_paths

    o = _options(opts or [], batch_size=batch_size)
    batch_size, decode_threads = o["batch_size"], o["decode_threads"]
    paths = _paths(list_file)
    t0 = time.perf_counter()
    tagger = _tagger(kind, backend, threads, int8)
    if not (o["spinning"] and o["arena"]):
        _reopen_session(tagger, threads, spinning=o["spinning"], arena=o["arena"])
    load_s = time.perf_counter() - t0
    for _ in tag_paths(tagger, paths[:batch_size], batch_size=batch_size, decode_threads=decode_threads,
                       progress=False):  # warm-up
        pass
    n_garments = 0
    timings: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for record in tag_paths(tagger, paths, batch_size=batch_size, decode_threads=decode_threads, progress=False):
        json.dumps(record, ensure_ascii=False)  # the JSON line the CLI writes
        if record["error"] is not None:
            raise SystemExit(f"bench_scale: {record['image']['path']} failed: {record['error']}")
        n_garments += len(record["garments"])
        timings.append(record["timing_ms"])
    dt = time.perf_counter() - t0
    keys = sorted({k for t in timings for k in t})
    return {"images": len(paths), "seconds": dt, "images_per_s": len(paths) / dt, "load_s": load_s,
            "garments_per_image": n_garments / len(paths),
            "mean_timing_ms": {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in keys}}


def reference_model(variant: str) -> Any:
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    cap = {"default": 100, "cap5": 5}[variant]
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=7, min_size=REFERENCE_SIZE,
                                 max_size=REFERENCE_SIZE, box_detections_per_img=cap).eval()


def work_maskrcnn(variant: str, threads: int, list_file: str) -> dict[str, Any]:
    import numpy as np
    import torch

    from fashionlens.imageio import load_image
    from fashionlens.jobs.local import DETECT_MIN_SIDE

    torch.set_num_threads(threads)
    paths = _paths(list_file)
    t0 = time.perf_counter()
    model = reference_model(variant)
    load_s = time.perf_counter() - t0

    def run(path: Path) -> int:
        im = load_image(path, min_side=DETECT_MIN_SIDE)  # decoded exactly as our pipeline decodes
        x = torch.from_numpy(im.rgb).permute(2, 0, 1).float().div_(255.0)
        with torch.inference_mode():
            [out] = model([x])
        masks = (out["masks"][:, 0] >= 0.5).numpy()
        return int(masks.shape[0])

    run(paths[0])  # warm-up
    t0 = time.perf_counter()
    dets = [run(p) for p in paths]
    dt = time.perf_counter() - t0
    return {"images": len(paths), "seconds": dt, "images_per_s": len(paths) / dt, "load_s": load_s,
            "garments_per_image": float(np.mean(dets)), "mean_timing_ms": {"total": dt * 1000 / len(paths)}}


def work_gemm(threads: int, n: int = 2048) -> dict[str, Any]:
    """Peak float32 GEMM GFLOP/s (best of several) with torch and NumPy on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best_t = float("inf")
    torch.mm(a, b)
    for _ in range(8):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best_t = min(best_t, time.perf_counter() - t0)
    an, bn = a.numpy(), b.numpy()
    best_n = float("inf")
    an @ bn
    for _ in range(8):
        t0 = time.perf_counter()
        an @ bn
        best_n = min(best_n, time.perf_counter() - t0)
    flops = 2 * n ** 3
    return {"threads": threads, "n": n, "torch_gflops": flops / best_t / 1e9, "numpy_gflops": flops / best_n / 1e9}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    if args.config.startswith("gemm/"):
        out = work_gemm(int(args.config.split("/")[1]))
    else:
        kind, variant, threads, *opts = args.config.split("/")
        if kind == "maskrcnn":
            out = work_maskrcnn(variant, int(threads), args.list)
        elif kind == "model":
            out = work_model(variant, int(threads), opts, args.int8)
        else:
            out = work_tag(kind, variant, int(threads), args.list, 16 if kind == "whole" else 8, args.int8, opts)
    out["peak_rss_mb"] = _peak_rss_mb()
    out["loadavg_1min"] = os.getloadavg()[0]
    return out


def run_worker(config: str, list_file: Path | None, int8: str | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--config", config]
    if list_file is not None:
        cmd += ["--list", str(list_file)]
    if int8:
        cmd += ["--int8", int8]
    env = dict(os.environ)
    if config.startswith("gemm/"):  # NumPy's BLAS reads its thread count at import
        t = config.split("/")[1]
        env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench_scale: worker {config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ FLOPs


def count_flops(photo: Path) -> dict[str, float]:
    """FLOPs (2 per multiply-add, convolutions and matrix products) of one forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.imageio import load_image
    from fashionlens.models.classifier import load_classifier
    from fashionlens.models.registry import default_weights_path
    from fashionlens.jobs.local import DETECT_MIN_SIDE

    def flops(fn: Any) -> float:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())

    out: dict[str, float] = {}
    classifier = load_classifier(default_weights_path()).eval()
    size = classifier.meta.input_size
    out["classifier_224"] = flops(lambda: classifier(torch.zeros(1, 3, size, size)))
    im = load_image(photo, min_side=DETECT_MIN_SIDE)
    x = torch.from_numpy(im.rgb).permute(2, 0, 1).float().div_(255.0)
    detector = GarmentDetector(backend="torch").model  # thresholds and caps as `fashionlens tag` sets them
    with torch.inference_mode():
        n_ours = len(detector([x])[0]["boxes"])
    out["detector_photo"] = flops(lambda: detector([x]))
    out["detector_photo_detections"] = n_ours
    padded = detector.transform([x])[0].tensors
    out["detector_backbone_fpn"] = flops(lambda: detector.backbone(padded))
    out["detector_input_hw"] = list(padded.shape[-2:])  # type: ignore[assignment]
    for variant in ("cap5", "default"):
        ref = reference_model(variant)
        with torch.inference_mode():
            n_ref = len(ref([x])[0]["boxes"])
        out[f"maskrcnn_{variant}_photo"] = flops(lambda ref=ref: ref([x]))
        out[f"maskrcnn_{variant}_detections"] = n_ref
    ref = reference_model("cap5")
    out["maskrcnn_backbone_fpn"] = flops(lambda: ref.backbone(ref.transform([x])[0].tensors))
    return out


# ------------------------------------------------------------------------------------ profile


def profile_detect(paths: list[Path], *, threads: int = 2) -> dict[str, Any]:
    """Serial cost per photo of every stage of the default detection pipeline (ONNX Runtime + NumPy, no
    torch), one photo at a time, the stages called the way ``OnnxDetector.__call__`` /
    ``GarmentDetector.detect`` / ``Tagger._tag_detected`` call them."""
    import numpy as np
    from pycocotools import mask as mask_utils

    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.imageio import load_image
    from fashionlens.jobs.local import DETECT_MIN_SIDE
    from fashionlens.pipeline import Tagger, crop_garment, preprocess
    from fashionlens.runtime.detector_postprocess import (
        fcos_detections,
        paste_masks,
        resize_boxes,
        resize_normalise,
        semantic_instance_masks,
    )

    det = GarmentDetector(threads=threads, backend="onnx")
    tagger = Tagger(backend="onnx", threads=threads, detector=det)
    runner = det.run  # the OnnxDetector
    config, limits = runner.config, det.limits()  # type: ignore[attr-defined]
    stages = ["decode", "resize_normalise", "detector_network", "box_decode_nms", "masks", "threshold_rules",
              "crops", "classifier_preprocess", "classifier_network", "rle", "json"]
    ms: dict[str, list[float]] = {s: [] for s in stages}
    n_garments = []

    def one(path: Path, record: bool) -> None:
        t = time.perf_counter()
        marks: dict[str, float] = {}

        def mark(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            marks[name] = (now - t) * 1000
            t = now

        im = load_image(path, min_side=DETECT_MIN_SIDE)
        mark("decode")
        images, resized = resize_normalise(im.rgb, config)
        mark("resize_normalise")
        cls, box, ctr, seg, *features = runner.session.run(runner._outputs, {"images": images})  # type: ignore[attr-defined]
        mark("detector_network")
        padded = (int(images.shape[2]), int(images.shape[3]))
        out = fcos_detections(cls[0], box[0], ctr[0], padded, resized, config, score_thresh=limits.score_thresh,
                              nms_thresh=limits.nms_thresh, detections_per_img=limits.detections_per_img)
        mark("box_decode_nms")
        original = (int(im.rgb.shape[0]), int(im.rgb.shape[1]))
        if runner.roi_session is not None:  # type: ignore[attr-defined]
            probs = runner._roi_mask_probs(features, out["boxes"], out["labels"], resized)  # type: ignore[attr-defined]
            out["boxes"] = resize_boxes(out["boxes"], resized, original)
            out["masks"] = paste_masks(probs, out["boxes"], original)
        else:
            out["boxes"] = resize_boxes(out["boxes"], resized, original)
            stride = images.shape[-1] / seg.shape[-1]
            valid = seg[0, :, : max(1, round(resized[0] / stride)), : max(1, round(resized[1] / stride))]
            out["masks"] = semantic_instance_masks(valid, out["boxes"], out["labels"], original, config.mask_size_limit)
        mark("masks")
        garments = det.to_garments(out, im.rgb.shape[:2])
        mark("threshold_rules")
        cut = [crop_garment(im, garments.xyxy[j], None if garments.mask is None else garments.mask[j],
                            margin=tagger.crop_margin) for j in garments]
        mark("crops")
        batch = np.stack([preprocess(c, tagger.meta) for c, _ in cut]) if cut else None
        mark("classifier_preprocess")
        if batch is not None:
            tagger._run(batch)
        mark("classifier_network")
        rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (garments.mask if garments.mask
                                                                                    is not None else [])]
        mark("rle")
        json.dumps({"garments": [{"mask": r["counts"].decode("ascii")} for r in rles]}, ensure_ascii=False)
        mark("json")
        if record:
            for k, v in marks.items():
                ms[k].append(v)
            n_garments.append(len(cut))

    one(paths[0], False)  # warm-up
    for p in paths:
        one(p, True)
    mean = {k: float(np.mean(v)) for k, v in ms.items()}
    total = sum(mean.values())
    return {"photos": len(paths), "threads": threads, "garments_per_photo": float(np.mean(n_garments)),
            "mean_ms": mean, "total_ms": total, "serial_photos_per_s": 1000 / total}


def cprofile_tag(paths: list[Path], *, top: int = 18) -> list[dict[str, Any]]:
    """cProfile of ``tag_paths`` with the default detection pipeline (main thread only)."""
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.pipeline import Tagger
    from fashionlens.jobs.local import tag_paths

    tagger = Tagger(detector=GarmentDetector())
    list(tag_paths(tagger, paths[:4], batch_size=4, progress=False))
    prof = cProfile.Profile()
    prof.enable()
    for r in tag_paths(tagger, paths, batch_size=8, progress=False):
        json.dumps(r)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, fn), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({fn})", "calls": ncalls, "tottime_s": tottime,
                     "cumtime_s": cumtime, "tottime_share": tottime / total})
    rows.sort(key=lambda r: -r["tottime_s"])
    return [{"total_s": total, "photos": len(paths)}, *rows[:top]]


# ------------------------------------------------------------------------------------ int8 sweep


def int8_sweep(out_dir: Path, cache: Path, *, variants: list[str] | None = None, calibration: int = 96,
               threads: int = 2, val_limit: int | None = None) -> dict[str, Any]:
    """Quantise the shipped classifier export every :data:`INT8_VARIANTS` way; for each: model-only
    images/s (fresh subprocess, batch 16) and the validation metrics of ``fashionlens evaluate
    classifier`` (:func:`classifier_metrics` on the val split of ``cache``), plus the share of val
    samples whose category arg-max agrees with the float model."""
    import numpy as np
    from PIL import Image

    from fashionlens.evaluate.classification import classifier_metrics
    from fashionlens.models.registry import default_weights_path
    from fashionlens.runtime.backends import OnnxBackend, onnx_path_for
    sys.path.insert(0, str(ROOT / "experiments" / "scripts"))  # the int8 quantiser is lab code
    from onnx_quantize import QuantizeSettings, quantize_classifier_onnx
    from fashionlens.train.samples import SampleDataset, read_samples

    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = onnx_path_for(default_weights_path())
    samples = read_samples(cache)
    train = [q for q in samples if q.split == "train"]
    step = max(1, len(train) // calibration)
    calib = []
    for q in train[::step][:calibration]:  # every k-th training sample: all three sources
        with Image.open(cache / q.file) as im:
            calib.append(np.asarray(im.convert("RGB")))
    val = [q for q in samples if q.split == "val"][:val_limit]
    ref = OnnxBackend(float_path, threads=threads)
    meta = ref.meta
    ds = SampleDataset(cache, val, meta.heads, mean=meta.mean, std=meta.std, size=meta.input_size)
    batches = [np.stack([ds[i][0].numpy() for i in range(s, min(len(ds), s + 32))]) for s in range(0, len(ds), 32)]

    def evaluate(backend: OnnxBackend) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        probs: dict[str, list[np.ndarray]] = {h.name: [] for h in meta.heads}
        for b in batches:
            for k, v in backend.run(b).items():
                probs[k].append(v)
        P = {k: np.concatenate(v) for k, v in probs.items()}
        m = classifier_metrics(P, val, meta.heads, thresholds=meta.thresholds)
        summary = {"category_accuracy": m["category"]["accuracy"], "category_macro_f1": m["category"]["macro_f1"],
                   "object_type_accuracy": m["object_type"]["accuracy"],
                   "clothing10_accuracy": m.get("clothing10", {}).get("accuracy"),
                   "rise_type_accuracy": m.get("rise_type", {}).get("accuracy"),
                   "colours_macro_f1": m.get("colours", {}).get("macro_f1")}
        return P, summary

    ref_probs, ref_summary = evaluate(ref)
    speed = run_worker("model/onnx/2/b16", None, None)["images_per_s"]
    results: dict[str, Any] = {"float": {"path": str(float_path), "val": ref_summary, "model_images_per_s": speed,
                                         "n_val": len(val), "calibration_images": len(calib)}}
    print(f"  float: {speed:.1f} img/s (model only), val {ref_summary}", file=sys.stderr)
    for name, kwargs in INT8_VARIANTS.items():
        if variants and name not in variants:
            continue
        t0 = time.perf_counter()
        path = quantize_classifier_onnx(float_path, out_dir / f"{name}.onnx", calibration_images=calib,
                                        settings=QuantizeSettings(**kwargs))
        quant_s = time.perf_counter() - t0
        P, summary = evaluate(OnnxBackend(path, threads=threads))
        agree = {h.name: float(np.mean(P[h.name].argmax(1) == ref_probs[h.name].argmax(1)))
                 for h in meta.heads if h.kind == "single"}
        speed = run_worker("model/onnx-int8/2/b16", None, str(path))["images_per_s"]
        delta = {k: (None if v is None or ref_summary[k] is None else v - ref_summary[k]) for k, v in summary.items()}
        results[name] = {"path": str(path), "settings": kwargs, "quantise_s": quant_s, "val": summary,
                         "val_minus_float": delta, "argmax_agreement": agree, "model_images_per_s": speed}
        print(f"  {name}: {speed:.1f} img/s (model only), val {summary}, agreement {agree}", file=sys.stderr)
    (out_dir / "int8_sweep.json").write_text(json.dumps(results, indent=2))
    return results


# ------------------------------------------------------------------------------------ report


def _fmt_runs(xs: list[float]) -> str:
    return " / ".join(f"{x:.1f}" if x >= 10 else f"{x:.2f}" for x in xs)


def report(rows: dict[str, dict[str, Any]], flops: dict[str, float] | None, gemm: dict[int, dict[str, Any]],
           repeats: int) -> str:
    lines = [(f"| configuration | images/s (median of {repeats}) | runs | peak RSS MiB | garments or detections/img |"
              " mean ms/img (decode · infer or detect · classify · post) | GFLOP/img | achieved GFLOP/s | "
              "share of peak |"), "|---|---:|---|---:|---:|---|---:|---:|---:|"]
    for name, r in rows.items():
        kind, variant, threads, *_ = name.split("/")
        g = None
        if flops:
            if kind in ("whole", "model"):
                g = flops["classifier_224"]
            elif kind == "detect":
                g = flops["detector_photo"] + r["garments_per_image"] * flops["classifier_224"]
            else:
                g = flops[f"maskrcnn_{variant}_photo"]
        ach = g * r["median_images_per_s"] / 1e9 if g else None
        peak = gemm.get(int(threads), {}).get("torch_gflops")
        t = r["mean_timing_ms"]
        parts = " · ".join(f"{k} {t[k]:.1f}" for k in ("decode", "infer", "detect", "classify", "post", "total")
                           if k in t)
        lines.append(
            f"| {name} | **{r['median_images_per_s']:.2f}** | {_fmt_runs(r['images_per_s'])} | "
            f"{r['peak_rss_mb']:.0f} | {r['garments_per_image']:.2f} | {parts} | "
            f"{'' if g is None else f'{g / 1e9:.2f}'} | {'' if ach is None else f'{ach:.1f}'} | "
            f"{'' if ach is None or not peak else f'{100 * ach / peak:.0f} %'} |")
    ratios = []
    for threads in (1, 2):
        for variant in ("cap5", "default"):
            ours, ref = rows.get(f"detect/onnx/{threads}"), rows.get(f"maskrcnn/{variant}/{threads}")
            if ours and ref:
                ratios.append(f"detect/onnx/{threads} ÷ maskrcnn/{variant}/{threads} = "
                              f"**{ours['median_images_per_s'] / ref['median_images_per_s']:.2f}×**")
    return "\n".join(lines) + ("\n\n" + "\n".join(f"* {r}" for r in ratios) if ratios else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ccp", type=Path, default=CCP_PHOTOS, help="street photos for the detection configurations")
    p.add_argument("--clothing", type=Path, default=CLOTHING_PHOTOS, help="photos for whole-image tagging")
    p.add_argument("--limit", type=int, default=30, help="CCP photos per detection/reference run")
    p.add_argument("--whole-limit", type=int, default=200, help="clothing photos per whole-image run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--int8", default=None, help="int8 classifier export for the onnx-int8 configurations")
    p.add_argument("--only", default=None, help="comma-separated configurations, e.g. whole/onnx/2,detect/onnx/2")
    p.add_argument("--levers", action="store_true", help="run the whole-image lever configurations instead")
    p.add_argument("--int8-sweep", type=Path, default=None, metavar="DIR",
                   help="quantise the classifier in every INT8_VARIANTS way into DIR, measure speed and val accuracy")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache" / "classifier-224-s0",
                   help="prepared sample cache for --int8-sweep (calibration: train split; accuracy: val split)")
    p.add_argument("--variants", default=None, help="--int8-sweep: comma-separated names of INT8_VARIANTS")
    p.add_argument("--val-limit", type=int, default=None, help="--int8-sweep: first N val samples (smoke tests)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count and the GEMM peak")
    p.add_argument("--profile", action="store_true", help="stage-by-stage profile + cProfile of the pipeline")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--list", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    if args.int8_sweep is not None:
        print(json.dumps(int8_sweep(args.int8_sweep, args.cache, val_limit=args.val_limit,
                                    variants=args.variants.split(",") if args.variants else None), indent=2))
        return 0
    configs = args.only.split(",") if args.only else list(LEVER_CONFIGS if args.levers else CONFIGS)
    if not args.int8:
        configs = [c for c in configs if "/onnx-int8/" not in c]
    unknown = [c for c in configs if c not in CONFIGS + LEVER_CONFIGS]
    if unknown:
        raise SystemExit(f"bench_scale: unknown configuration(s) {unknown}; expected some of {CONFIGS}")
    for folder in (args.ccp, args.clothing):
        if not folder.is_dir():
            raise SystemExit(f"bench_scale: {folder} not found (pass --ccp / --clothing)")
    info = machine()
    print(f"# load average at start {info['loadavg_start']}; {info['cores']} cores ({info['cpu']})", file=sys.stderr)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        lists = {}
        for kind, folder, limit in (("whole", args.clothing, args.whole_limit), ("detect", args.ccp, args.limit)):
            f = Path(tmp) / f"{kind}.txt"
            f.write_text("\n".join(str(q) for q in image_list(folder, limit)))
            lists[kind] = f
        lists["maskrcnn"] = lists["detect"]
        lists["model"] = None
        gemm: dict[int, dict[str, Any]] = {}
        if not args.no_flops and not args.levers:
            for t in (1, 2):
                gemm[t] = run_worker(f"gemm/{t}", None, None)
                print(f"  GEMM {t} thread(s): torch {gemm[t]['torch_gflops']:.1f}, "
                      f"numpy {gemm[t]['numpy_gflops']:.1f} GFLOP/s", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
        for r in range(args.repeats):
            for c in configs:
                res = run_worker(c, lists[c.split("/")[0]], args.int8)
                runs[c].append(res)
                print(f"  repeat {r + 1}: {c:20s} {res['images_per_s']:7.2f} img/s, peak RSS "
                      f"{res['peak_rss_mb']:.0f} MiB, load {res['loadavg_1min']:.2f}", file=sys.stderr)
        rows = {}
        for c, rs in runs.items():
            rows[c] = {"images_per_s": [x["images_per_s"] for x in rs],
                       "median_images_per_s": statistics.median(x["images_per_s"] for x in rs),
                       "peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
                       "garments_per_image": statistics.median(x["garments_per_image"] for x in rs),
                       "load_s": statistics.median(x["load_s"] for x in rs),
                       "loadavg_1min": [x["loadavg_1min"] for x in rs],
                       "mean_timing_ms": {k: statistics.median(x["mean_timing_ms"][k] for x in rs)
                                          for k in rs[0]["mean_timing_ms"]}}
        bench_s = time.time() - started
        ccp = _paths(str(lists["detect"]))
        flops = None if args.no_flops or args.levers else count_flops(ccp[0])
        prof = cprof = None
        if args.profile:
            prof = [profile_detect(ccp[:20], threads=t) for t in (1, 2)]
            cprof = cprofile_tag(ccp[:16])
    info["loadavg_end"] = os.getloadavg()
    info["benchmark_seconds"] = bench_s
    info["total_seconds"] = time.time() - started

    print(report(rows, flops, gemm, args.repeats))
    if flops:
        print("\nFLOPs: " + ", ".join(f"{k} {v / 1e9:.2f} G" if isinstance(v, float) and v > 1e6 else f"{k} {v}"
                                      for k, v in flops.items()))
        for t, g in gemm.items():
            print(f"GEMM peak, {t} thread(s): torch {g['torch_gflops']:.1f} GFLOP/s, numpy {g['numpy_gflops']:.1f}")
            print(f"  floor: classifier {g['torch_gflops'] * 1e9 / flops['classifier_224']:.0f} img/s, "
                  f"detector network {g['torch_gflops'] * 1e9 / flops['detector_photo']:.1f} photos/s")
    for pr in prof or []:
        print(f"\nserial stage profile, {pr['threads']} thread(s), {pr['photos']} photos, "
              f"{pr['garments_per_photo']:.2f} garments/photo (ms/photo):")
        for k, v in pr["mean_ms"].items():
            print(f"  {k:22s} {v:7.2f}  {100 * v / pr['total_ms']:5.1f} %")
        print(f"  total {pr['total_ms']:.1f} ms → {pr['serial_photos_per_s']:.2f} photos/s one stage at a time")
    if cprof:
        print(f"\ncProfile of tag_paths (main thread), {cprof[0]['photos']} photos, {cprof[0]['total_s']:.2f} s:")
        for row in cprof[1:]:
            print(f"  {100 * row['tottime_share']:5.1f} %  {row['tottime_s']:6.3f} s  {row['function']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "repeats": args.repeats, "rows": rows, "flops": flops,
                                         "gemm": gemm, "profile": prof, "cprofile": cprof}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
