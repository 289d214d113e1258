"""Read one of the development data sets by name (``clothing``, ``rise``, ``ccp``)."""

from __future__ import annotations

from pathlib import Path

from fashionlens.io.records import ImageRecord

DATASETS: tuple[str, ...] = ("clothing", "rise", "ccp")


def read_dataset(name: str, root: str | Path) -> list[ImageRecord]:
    """Records of data set ``name`` stored under ``root/name`` (see each reader for the layout)."""
    from fashionlens.io.ccp import read_ccp
    from fashionlens.io.clothing import read_clothing
    from fashionlens.io.rise import read_rise

    readers = {"clothing": read_clothing, "rise": read_rise, "ccp": read_ccp}
    if name not in readers:
        raise ValueError(f"unknown data set {name!r}; expected one of {list(readers)}")
    return readers[name](Path(root) / name)
