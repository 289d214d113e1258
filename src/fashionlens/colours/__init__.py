"""Colours of a garment: palette naming from pixels, the pixel colour model, plain backdrops."""
