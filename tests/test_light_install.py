"""The light install (``pip install fashionlens``, plus the test tools) has no torch (issue 26).

CI runs the inference tests in such an environment with ``FASHIONLENS_EXPECT_LIGHT=1`` (``.ci/run``): there
this test asserts that torch, torchvision, transformers and sentence-transformers cannot be imported, so
that every inference test that passes there passed without them. Elsewhere it skips.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

#: modules that only the ``train`` extra may bring
TRAIN_ONLY = ("torch", "torchvision", "transformers", "sentence_transformers")

pytestmark = pytest.mark.skipif(os.environ.get("FASHIONLENS_EXPECT_LIGHT") != "1",
                                reason="FASHIONLENS_EXPECT_LIGHT=1 is set only in the light environment")


@pytest.mark.parametrize("module", TRAIN_ONLY)
def test_train_only_module_is_not_installed(module: str) -> None:
    assert importlib.util.find_spec(module) is None, (
        f"{module} is installed in the light environment: `pip install fashionlens` must not bring it")


def test_inference_commands_import_without_torch() -> None:
    """Importing the package and building every command's parser imports none of them either."""
    code = ("import sys, fashionlens, fashionlens.pipeline, fashionlens.service.app; "
            "from fashionlens.cli.main import build_parser; build_parser(); "
            f"print(sorted(m for m in {TRAIN_ONLY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
