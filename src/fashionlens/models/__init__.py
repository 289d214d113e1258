"""fashionlens.models."""
