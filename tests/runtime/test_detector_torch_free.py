"""The default detector runs without torch (issue 26): loading it and detecting garments in a photo
imports neither torch nor torchvision. Runs in a fresh interpreter, so nothing this test session
imported counts; needs no torch itself (it runs in the light environment too)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from fashionlens.detection.detector import DetectSettings, GarmentDetector
    from fashionlens.detection.rules import RULES
    from fashionlens.imageio import DecodedImage

    rng = np.random.default_rng(0)
    rgb = np.full((300, 200, 3), 235, np.uint8)
    rgb[60:260, 50:150] = (180, 30, 40)
    rgb = np.clip(rgb.astype(int) + rng.integers(-8, 9, rgb.shape), 0, 255).astype(np.uint8)
    detector = GarmentDetector(threads=1)
    image = DecodedImage(rgb=rgb, width=400, height=600, scale=0.5, format="PNG", mode="RGB")
    found = detector.detect(image, DetectSettings(score_thresh=0.05, rules=tuple(RULES)))
    strip = detector.detect_rgb(np.full((20, 400, 3), 120, np.uint8))  # the letterbox path
    print(json.dumps({"backend": detector.backend, "found": len(found), "mask": list(found.mask.shape),
                      "strip_mask": list(strip.mask.shape),
                      "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))}))
""")


def test_default_detector_imports_no_torch() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=root, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "onnx"
    assert out["found"] >= 1 and out["mask"][1:] == [600, 400]  # masks in the photo's full-size pixels
    assert out["strip_mask"][1:] == [20, 400]
    assert out["torch"] == [], f"torch was imported: {out['torch'][:5]}"
