"""fashionlens.io."""
