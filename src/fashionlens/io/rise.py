"""Reader for the RISE second-hand clothing subset (CC BY 4.0): ``garments.jsonl`` + ``images/<id>.jpg``.

Each row: ``id, type, pattern, cut, material, colors, season, gender``. ``colors`` and ``cut`` are
Python-style list strings; ``material`` is free text parsed by
:func:`fashionlens.taxonomy.composition.main_fibre`. Each item is its own group.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from fashionlens.io.records import AttributeValue, GarmentAnnotation, ImageRecord
from fashionlens.taxonomy import load_mapping
from fashionlens.taxonomy.composition import main_fibre

log = logging.getLogger(__name__)


def _parse_list(value: object, *, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: expected a list string like \"['Red']\", got {value!r}") from None
    if not isinstance(parsed, (list, tuple)):
        raise ValueError(f"{where}: expected a list, got {value!r}")
    return [str(v) for v in parsed]


def rise_attributes(row: dict, *, where: str = "row") -> dict[str, AttributeValue]:
    """Taxonomy attributes of one RISE row (pattern, colours, material, fit, neckline)."""
    mapping = load_mapping("rise")
    attrs: dict[str, AttributeValue] = {}
    pattern = row.get("pattern")
    if pattern:
        key = str(pattern).strip().capitalize() if str(pattern).strip().lower() == "none" else str(pattern).strip()
        mapped = mapping.table("patterns").get(key)
        if mapped:
            attrs["pattern"] = mapped
    colours: list[str] = []
    for c in _parse_list(row.get("colors"), where=f"{where}: colors"):
        name = mapping.table("colours").get(c.strip().capitalize())
        if name is None:
            log.debug("%s: colour %r is not in the RISE colour table", where, c)
        elif name not in colours:
            colours.append(name)
    if colours:
        attrs["colours"] = tuple(colours)
    fibre = main_fibre(row.get("material"))
    if fibre:
        attrs["material"] = fibre
    cut_table = mapping.table("cut")
    fits, necklines = [], []
    for c in _parse_list(row.get("cut"), where=f"{where}: cut"):
        spec = cut_table.get(c.strip())
        if spec is None:
            continue
        fits += [spec["fit"]] if "fit" in spec else []
        necklines += [spec["neckline"]] if "neckline" in spec else []
    non_regular = [f for f in fits if f != "regular"]
    if non_regular:
        attrs["fit"] = non_regular[0]
    elif fits:
        attrs["fit"] = "regular"
    if necklines:
        attrs["neckline"] = necklines[0]
    return attrs


def iter_rise_rows(root: str | Path) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for each non-empty line of ``root/garments.jsonl`` (``where`` = ``path:line``)."""
    path = Path(root) / "garments.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"RISE data set: expected {path}")
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {str(row)[:80]!r}")
            yield where, row


def read_rise(root: str | Path) -> list[ImageRecord]:
    """Read ``root/garments.jsonl``; every item becomes one record with one garment."""
    root = Path(root)
    mapping = load_mapping("rise")
    records: list[ImageRecord] = []
    for where, row in iter_rise_rows(root):
        if "id" not in row or "type" not in row:
            raise ValueError(f"{where}: expected keys 'id' and 'type', got {sorted(row)}")
        mapped = mapping.resolve(str(row["type"]))
        garment = GarmentAnnotation(categories=mapped.categories, object_type=mapped.object_type,
                                    attributes=rise_attributes(row, where=where), source_label=str(row["type"]))
        records.append(ImageRecord(
            path=root / "images" / f"{row['id']}.jpg", source="rise", group=f"rise/{row['id']}",
            garments=[garment],
            meta={k: row.get(k) for k in ("type", "material", "season", "gender")},
        ))
    log.info("rise: %d items read", len(records))
    return records
