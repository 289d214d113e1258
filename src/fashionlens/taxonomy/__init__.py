"""The fashionlens taxonomy: object types, categories, attribute vocabularies and the
mappings from every source label set into them.

The data lives in ``taxonomy/data/*.yaml``; this module is the small API over it::

    >>> from fashionlens.taxonomy import load_taxonomy, load_mapping
    >>> tax = load_taxonomy()
    >>> tax.object_type_of("jeans")
    'lower-body'
    >>> load_mapping("clothing").resolve("Pants").categories
    ('jeans', 'trousers')
"""

from fashionlens.taxonomy._mapping import (
    LabelMapping,
    MappedLabel,
    available_mappings,
    load_mapping,
)
from fashionlens.taxonomy._taxonomy import (
    AttributeGroup,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
)
from fashionlens.taxonomy.second_hand import DAMAGE_TYPES, ROUTES

__all__ = [
    "DAMAGE_TYPES",
    "ROUTES",
    "AttributeGroup",
    "LabelMapping",
    "MappedLabel",
    "Taxonomy",
    "TaxonomyError",
    "available_mappings",
    "load_mapping",
    "load_taxonomy",
]
