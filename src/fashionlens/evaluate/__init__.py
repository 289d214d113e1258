"""fashionlens.evaluate."""
