"""Which prediction heads the garment classifier has, derived from the taxonomy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fashionlens.taxonomy import load_taxonomy

HeadKind = Literal["single", "multi"]

#: attribute groups that get a trained head (the taxonomy may hold more, e.g. styles)
ATTRIBUTE_HEADS: tuple[str, ...] = ("pattern", "colours", "material", "sleeve", "neckline", "fit")


@dataclass(frozen=True)
class HeadSpec:
    """One output head: ``category`` (softmax over taxonomy categories) or an attribute group."""

    name: str
    kind: HeadKind
    values: tuple[str, ...]

    @property
    def num_outputs(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        return cls(name=d["name"], kind=d["kind"], values=tuple(d["values"]))


def default_heads(attribute_heads: tuple[str, ...] = ATTRIBUTE_HEADS) -> tuple[HeadSpec, ...]:
    tax = load_taxonomy()
    heads = [HeadSpec("category", "single", tax.categories)]
    for name in attribute_heads:
        group = tax.attribute(name)
        heads.append(HeadSpec(name, group.kind, group.values))
    return tuple(heads)
