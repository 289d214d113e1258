"""Does the garment pixel filter change colour naming on plain-backdrop photos? RISE validation, detect mode.

In ``tag``'s detect mode on a plain-backdrop photo, the pixel colour model reads the garment's mask
pixels (``fashionlens.models.pixel_colours``), so dropping pixels changes its input. This runs
:func:`fashionlens.evaluate.colours.evaluate_colours` (``detect=True``, RISE validation split, the
numbers of the model card ``garment-colours-pixels.md``) with the shipped filter and with the filter
off, side by side in one run.

    .venv/bin/python experiments/scripts/measure_pixel_filter_rise.py [--data-root ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json

from fashionlens.colours import naming
from fashionlens.evaluate.colours import evaluate_colours, labelled_colour_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="../shared/datasets")
    args = ap.parse_args()
    records = labelled_colour_records(args.data_root)["val"]
    out = {}
    shipped = naming.default_pixel_filter
    for name, filt in (("filter_off", lambda: None), ("filter_on", shipped)):
        naming.default_pixel_filter = filt  # garment_pixels' default looks the filter up here
        result = evaluate_colours(records, detect=True, progress=False)
        out[name] = {k: {m: result[k][m] for m in ("macro_f1", "micro_f1", "exact_match")}
                     for k in ("head", "head+pixels")}
        print(name, json.dumps(out[name]), flush=True)
    naming.default_pixel_filter = shipped
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
