from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from fashionlens.taxonomy._taxonomy import (
    Taxonomy,
    TaxonomyError,
    _suggest,
    load_taxonomy,
)


@dataclass(frozen=True)
class MappedLabel:
    """What one source label means in the taxonomy.

    ``categories`` is the set of taxonomy categories the label allows: one for an exact
    mapping, several for a coarse label ("Shoes" = any footwear category), empty when only
    the object type is known or the label is unmapped.
    """

    source_label: str
    categories: tuple[str, ...] = ()
    object_type: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    unmapped: str | None = None
    note: str | None = None

    @property
    def is_mapped(self) -> bool:
        return self.unmapped is None


@dataclass(frozen=True)
class LabelMapping:
    """A source label set (e.g. CCP's 59 classes) mapped into the taxonomy."""

    source: str
    description: str
    labels: dict[str, MappedLabel]
    tables: dict[str, dict[str, Any]]

    def resolve(self, label: str) -> MappedLabel:
        try:
            return self.labels[label]
        except KeyError:
            raise TaxonomyError(
                f"{self.source}: unknown source label {label!r}; the mapping lists {len(self.labels)} labels."
                + _suggest(label, list(self.labels))
            ) from None

    def table(self, name: str) -> dict[str, Any]:
        """An extra value table of the source, e.g. RISE ``patterns`` → taxonomy pattern (None = unmapped)."""
        try:
            return self.tables[name]
        except KeyError:
            raise TaxonomyError(f"{self.source}: no table {name!r}; has {sorted(self.tables)}") from None

    @property
    def unmapped_labels(self) -> dict[str, str]:
        return {k: v.unmapped for k, v in self.labels.items() if v.unmapped is not None}


def _parse_label(tax: Taxonomy, source: str, label: str, spec: dict) -> MappedLabel:
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{source}: entry for {label!r} must be a mapping, got {spec!r}")
    known = {"category", "categories", "object_type", "attributes", "unmapped", "note"}
    extra = set(spec) - known
    if extra:
        raise TaxonomyError(f"{source}: entry {label!r} has unknown keys {sorted(extra)}; expected {sorted(known)}")
    if "unmapped" in spec:
        return MappedLabel(source_label=label, unmapped=str(spec["unmapped"]), note=spec.get("note"))
    cats: tuple[str, ...] = ()
    if "category" in spec:
        cats = (spec["category"],)
    elif "categories" in spec:
        cats = tuple(spec["categories"])
    for c in cats:
        tax.category_index(c)
    object_type = spec.get("object_type")
    types = {tax.object_type_of(c) for c in cats}
    if object_type is None:
        if len(types) != 1:
            raise TaxonomyError(f"{source}: entry {label!r} needs an object_type or categories of one object type")
        object_type = types.pop()
    else:
        tax.object_type_index(object_type)
        if types and types != {object_type}:
            raise TaxonomyError(f"{source}: entry {label!r} object_type {object_type!r} disagrees with its categories")
    attrs = dict(spec.get("attributes") or {})
    for group, value in attrs.items():
        tax.attribute(group).index(value)
    return MappedLabel(
        source_label=label, categories=cats, object_type=object_type, attributes=attrs, note=spec.get("note")
    )


def _mapping_dir():
    return resources.files("fashionlens.taxonomy").joinpath("data/mappings")


def available_mappings() -> list[str]:
    """Names of the packaged source mappings."""
    return sorted(p.name[:-5] for p in _mapping_dir().iterdir() if p.name.endswith(".yaml"))


@cache
def load_mapping(source: str) -> LabelMapping:
    """Load the packaged mapping of one source label set (``clothing``, ``ccp``, ``rise``, ...)."""
    names = available_mappings()
    if source not in names:
        raise TaxonomyError(f"no mapping for source {source!r}; available: {names}." + _suggest(source, names))
    raw = yaml.safe_load(_mapping_dir().joinpath(f"{source}.yaml").read_text("utf-8"))
    tax = load_taxonomy()
    labels = {str(k): _parse_label(tax, source, str(k), v) for k, v in (raw.get("labels") or {}).items()}
    tables = {k: v for k, v in raw.items() if k not in ("source", "description", "labels")}
    return LabelMapping(source=raw.get("source", source), description=raw.get("description", ""), labels=labels,
                        tables=tables)
