"""fashionlens.train."""
