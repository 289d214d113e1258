"""fashionlens: understand photos of clothes — garments, categories, attributes, colours."""

__version__ = "0.1.0"
