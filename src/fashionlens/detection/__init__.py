"""Garment detection: the detector, its post-processing rules, object-type fusion with the classifier, flat-lay auto-annotation."""
