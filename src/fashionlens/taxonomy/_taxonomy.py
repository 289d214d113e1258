from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml


class TaxonomyError(ValueError):
    """A label, group or data file does not match the taxonomy."""


def _suggest(value: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class AttributeGroup:
    """One attribute vocabulary, e.g. ``pattern`` (single-label) or ``colours`` (multi-label)."""

    name: str
    kind: Literal["single", "multi"]
    values: tuple[str, ...]
    rgb: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def index(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            raise TaxonomyError(
                f"unknown {self.name} value {value!r}; expected one of {list(self.values)}."
                + _suggest(value, self.values)
            ) from None


@dataclass(frozen=True)
class Taxonomy:
    """Object types, categories (each belonging to one object type) and attribute groups."""

    version: int
    object_types: tuple[str, ...]
    categories: tuple[str, ...]
    category_object_type: dict[str, str]
    attributes: dict[str, AttributeGroup]
    styles: dict[str, tuple[str, ...]]

    def category_index(self, category: str) -> int:
        try:
            return self.categories.index(category)
        except ValueError:
            raise TaxonomyError(
                f"unknown category {category!r}; expected one of {list(self.categories)}."
                + _suggest(category, self.categories)
            ) from None

    def object_type_index(self, object_type: str) -> int:
        try:
            return self.object_types.index(object_type)
        except ValueError:
            raise TaxonomyError(
                f"unknown object type {object_type!r}; expected one of {list(self.object_types)}."
                + _suggest(object_type, self.object_types)
            ) from None

    def object_type_of(self, category: str) -> str:
        self.category_index(category)
        return self.category_object_type[category]

    def categories_of(self, object_type: str) -> tuple[str, ...]:
        self.object_type_index(object_type)
        return tuple(c for c in self.categories if self.category_object_type[c] == object_type)

    def attribute(self, group: str) -> AttributeGroup:
        try:
            return self.attributes[group]
        except KeyError:
            names = list(self.attributes)
            raise TaxonomyError(
                f"unknown attribute group {group!r}; expected one of {names}." + _suggest(group, names)
            ) from None


def _parse(raw: dict) -> Taxonomy:
    for key in ("version", "object_types", "categories", "attributes"):
        if key not in raw:
            raise TaxonomyError(f"taxonomy file lacks the {key!r} section")
    object_types = tuple(raw["object_types"])
    cat_map = dict(raw["categories"])
    for cat, ot in cat_map.items():
        if ot not in object_types:
            raise TaxonomyError(f"category {cat!r} names unknown object type {ot!r}")
    attributes: dict[str, AttributeGroup] = {}
    for name, spec in raw["attributes"].items():
        kind = spec.get("kind")
        if kind not in ("single", "multi"):
            raise TaxonomyError(f"attribute group {name!r}: kind must be 'single' or 'multi', got {kind!r}")
        values = tuple(spec["values"])
        if len(set(values)) != len(values):
            raise TaxonomyError(f"attribute group {name!r} repeats a value")
        rgb = {k: tuple(v) for k, v in (spec.get("rgb") or {}).items()}
        unknown = set(rgb) - set(values)
        if unknown:
            raise TaxonomyError(f"attribute group {name!r}: rgb given for unknown values {sorted(unknown)}")
        attributes[name] = AttributeGroup(name=name, kind=kind, values=values, rgb=rgb)  # type: ignore[arg-type]
    styles = {k: tuple(v) for k, v in (raw.get("styles") or {}).items()}
    unknown_styles = set(styles) - set(cat_map)
    if unknown_styles:
        raise TaxonomyError(f"styles given for unknown categories {sorted(unknown_styles)}")
    return Taxonomy(
        version=int(raw["version"]),
        object_types=object_types,
        categories=tuple(cat_map),
        category_object_type=cat_map,
        attributes=attributes,
        styles=styles,
    )


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    """Load the packaged taxonomy (cached)."""
    text = resources.files("fashionlens.taxonomy").joinpath("data/taxonomy.yaml").read_text("utf-8")
    return _parse(yaml.safe_load(text))
