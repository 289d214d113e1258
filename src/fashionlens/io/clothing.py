"""Reader for the clothing data set (Alexey Grigorev, CC0): ``labels.csv`` + ``images/<id>.jpg``.

CSV columns: ``image, sender_id, label, kids``. Each photo shows one garment; the record gets
one garment without a box (the whole photo). ``group`` is the sender, whose photos share
backgrounds — split by it.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from fashionlens.io.records import GarmentAnnotation, ImageRecord
from fashionlens.taxonomy import load_mapping

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image", "sender_id", "label")


def read_clothing(root: str | Path, *, include_unmapped: bool = False) -> list[ImageRecord]:
    """Read ``root/labels.csv``. Photos whose label is unmapped (``Not sure``, ``Other``,
    ``Skip``) are left out unless ``include_unmapped`` (then they carry no garment label)."""
    root = Path(root)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"clothing data set: expected {csv_path} (columns {', '.join(REQUIRED_COLUMNS)})")
    mapping = load_mapping("clothing")
    records: list[ImageRecord] = []
    skipped = 0
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing columns {missing}; got {reader.fieldnames}")
        for line_no, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip()
            mapped = mapping.resolve(label)
            if not row["image"]:
                raise ValueError(f"{csv_path}:{line_no}: empty image id")
            if not mapped.is_mapped and not include_unmapped:
                skipped += 1
                continue
            garments = []
            if mapped.is_mapped:
                garments.append(GarmentAnnotation(categories=mapped.categories, object_type=mapped.object_type,
                                                  attributes=dict(mapped.attributes), source_label=label))
            records.append(ImageRecord(
                path=root / "images" / f"{row['image']}.jpg", source="clothing", group=f"clothing/{row['sender_id']}",
                garments=garments, meta={"label": label, "kids": row.get("kids") == "True"},
            ))
    log.info("clothing: %d photos read, %d with unmapped labels left out", len(records), skipped)
    return records
