"""Vocabularies of second-hand grading: the damage types the damage head finds and the routes an
item can take. Kept with the taxonomy so that models, training and the item record share them."""

from __future__ import annotations

#: damage types, in the damage head's class order (class 0 is "none")
DAMAGE_TYPES: tuple[str, ...] = ("stain", "hole", "pilling", "fading")
#: where a sorted item goes
ROUTES: tuple[str, ...] = ("reuse", "repair", "export", "recycle")
