"""Classifier training samples: one per labelled garment, prepared once into an image cache.

``prepare_samples`` cuts each garment (whole photo, or the box of a CCP instance with a margin),
resizes it to ``size × size`` (squashed: every pixel of the garment kept, as at inference) and
stores it as JPEG plus one JSON line of labels and split. Training epochs then read small JPEGs
instead of decoding full photos and masks again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fashionlens.io.atomic import atomic_write
from fashionlens.io.records import GarmentAnnotation, ImageRecord
from fashionlens.io.splits import group_split
from fashionlens.models.heads import HeadSpec
from fashionlens.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"


@dataclass
class Sample:
    file: str  # relative to the cache folder
    source: str
    group: str
    split: str
    categories: list[str]  # allowed set; empty = unknown
    object_type: str | None
    attributes: dict[str, str | list[str]] = field(default_factory=dict)
    source_label: str | None = None
    origin: str = ""
    bbox_xyxy: list[float] | None = None


def _crop_box(g: GarmentAnnotation, width: int, height: int, margin: float) -> tuple[int, int, int, int] | None:
    if g.bbox_xyxy is None:
        return None
    x0, y0, x1, y1 = g.bbox_xyxy
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(width, int(np.ceil(x1 + mx))),
            min(height, int(np.ceil(y1 + my))))


def prepare_samples(records: Sequence[ImageRecord], out_dir: str | Path, *, size: int = 224, seed: int = 0,
                    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), margin: float = 0.1,
                    min_crop_frac: float = 0.015, min_crop_side: int = 32, quality: int = 85, workers: int = 2,
                    progress: Callable[[int], None] | None = None) -> list[Sample]:
    """Write the cache to ``out_dir`` (``images/`` + ``samples.jsonl``) and return the samples.

    Garments with neither categories nor object type are skipped; CCP boxes smaller than
    ``min_crop_frac`` of the photo or ``min_crop_side`` px are too small to classify and skipped.
    Already written images are reused, so an interrupted run continues where it stopped.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    split_of = {}
    for name, recs in group_split(records, fractions=fractions, seed=seed).items():
        for r in recs:
            split_of[id(r)] = name

    def work(idx_rec: tuple[int, ImageRecord]) -> list[Sample]:
        idx, rec = idx_rec
        todo = [g for g in rec.garments if g.categories or g.object_type]
        if not todo:
            return []
        samples: list[Sample] = []
        image: Image.Image | None = None
        for j, g in enumerate(todo):
            name = f"images/{rec.source}_{idx:06d}_{j}.jpg"
            path = out / name
            if not path.exists():
                if image is None:
                    with Image.open(rec.path) as im:
                        image = im.convert("RGB")
                box = _crop_box(g, image.width, image.height, margin)
                crop = image if box is None else image.crop(box)
                if box is not None:
                    bw, bh = box[2] - box[0], box[3] - box[1]
                    if bw * bh < min_crop_frac * image.width * image.height or min(bw, bh) < min_crop_side:
                        continue
                small = crop.resize((size, size), Image.BILINEAR)
                atomic_write(path, lambda tmp, im=small: im.save(tmp, "JPEG", quality=quality), fsync=False)
            samples.append(Sample(
                file=name, source=rec.source, group=rec.group, split=split_of[id(rec)],
                categories=list(g.categories), object_type=g.object_type,
                attributes={k: list(v) if isinstance(v, tuple) else v for k, v in g.attributes.items()},
                source_label=g.source_label, origin=str(rec.path),
                bbox_xyxy=list(g.bbox_xyxy) if g.bbox_xyxy else None,
            ))
        return samples

    results: list[Sample] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in pool.map(work, enumerate(records)):
            results.extend(batch)
            if progress:
                progress(1)
    atomic_write(out / SAMPLES_FILE, lambda tmp: tmp.write_text("".join(json.dumps(asdict(s)) + "\n" for s in results),
                                                                encoding="utf-8"), fsync=False)
    meta = {"size": size, "seed": seed, "fractions": list(fractions), "margin": margin, "quality": quality,
            "count": len(results)}
    (out / "cache.json").write_text(json.dumps(meta, indent=2), "utf-8")
    return results


def read_samples(cache_dir: str | Path) -> list[Sample]:
    path = Path(cache_dir) / SAMPLES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no prepared samples at {path}; run the prepare step first")
    with path.open(encoding="utf-8") as fh:
        return [Sample(**json.loads(line)) for line in fh if line.strip()]


def allowed_categories(sample: Sample) -> list[str]:
    """The categories a sample's label allows: its set, or every category of its object type."""
    if sample.categories:
        return sample.categories
    if sample.object_type:
        return list(load_taxonomy().categories_of(sample.object_type))
    return []


def encode_targets(sample: Sample, heads: Sequence[HeadSpec]) -> dict[str, torch.Tensor]:
    """Targets per head. Single heads: ``{name}`` long index (-1 = no label); multi heads:
    ``{name}`` float 0/1 vector + ``{name}_valid`` bool. ``category`` is a bool mask of allowed
    classes (a coarse label allows several; all False = no label)."""
    out: dict[str, torch.Tensor] = {}
    for h in heads:
        if h.name == "category":
            mask = torch.zeros(h.num_outputs, dtype=torch.bool)
            for c in allowed_categories(sample):
                mask[h.values.index(c)] = True
            out["category"] = mask
            continue
        value = sample.attributes.get(h.name)
        if h.kind == "single":
            out[h.name] = torch.tensor(h.values.index(value) if isinstance(value, str) else -1)
        else:
            vec = torch.zeros(h.num_outputs)
            for v in value or []:
                vec[h.values.index(v)] = 1.0
            out[h.name] = vec
            out[f"{h.name}_valid"] = torch.tensor(bool(value))
    return out


class SampleDataset(Dataset):
    """Cached samples → ``(image tensor (3, S, S) normalised, targets dict)``.

    ``transform`` is an albumentations pipeline applied to the ``H×W×3`` uint8 array before
    normalisation (``None`` = none).
    """

    def __init__(self, cache_dir: str | Path, samples: Sequence[Sample], heads: Sequence[HeadSpec], *,
                 mean: Sequence[float], std: Sequence[float], size: int, transform=None,
                 sample_weights: Sequence[float] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.samples = list(samples)
        self.heads = tuple(heads)
        self.mean = np.asarray(mean, dtype=np.float32) * 255.0
        self.std = np.asarray(std, dtype=np.float32) * 255.0
        self.size = size
        self.transform = transform
        self.sample_weights = None if sample_weights is None else [float(w) for w in sample_weights]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> np.ndarray:
        with Image.open(self.cache_dir / self.samples[i].file) as im:
            rgb = np.asarray(im.convert("RGB"))
        if rgb.shape[0] != self.size or rgb.shape[1] != self.size:
            rgb = np.asarray(Image.fromarray(rgb).resize((self.size, self.size), Image.BILINEAR))
        return rgb

    def __getitem__(self, i: int):
        rgb = self.load(i)
        if self.transform is not None:
            rgb = self.transform(image=rgb)["image"]
        x = (rgb.astype(np.float32) - self.mean) / self.std
        targets = encode_targets(self.samples[i], self.heads)
        if self.sample_weights is not None:
            targets["sample_weight"] = torch.tensor(self.sample_weights[i])
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), targets
