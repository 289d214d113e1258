"""Without the ``train`` extra, training, evaluation, export and ``--backend torch`` end with one line that
names the extra to install and exit code 2 — never an ImportError traceback (issue 26).

Each command runs in a fresh interpreter where importing torch, torchvision, timm, albumentations, onnx or
transformers fails as it does where they are not installed (a ``sys.meta_path`` finder raises
``ModuleNotFoundError``), so the test means the same in the full and in the light environment.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import train as cli_train

# the module, not the function that fashionlens.cli re-exports under the same name
cli_main = importlib.import_module("fashionlens.cli.main")

ROOT = Path(__file__).resolve().parents[1]

EXTRA_HINT = "pip install 'fashionlens[train]'"

#: runs ``fashionlens`` (argv after the script) with the train-only modules made impossible to import
_BLOCKED_RUN = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from fashionlens.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _run_without_train_extra(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    blocked = ",".join(sorted(cli_main.TRAIN_ONLY_MODULES))
    return subprocess.run([sys.executable, "-c", _BLOCKED_RUN, blocked, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("argv", "command"), [
    (["train", "classifier", "--config", "configs/classifier_lite0.yaml"], "fashionlens train classifier"),
    (["evaluate", "detector"], "fashionlens evaluate detector"),
    (["export", "onnx", "--output", "{tmp}/classifier.onnx"], "fashionlens export onnx"),
])
def test_lab_command_without_train_extra_says_which_extra_in_one_line(argv: list[str], command: str,
                                                                      tmp_path: Path) -> None:
    proc = _run_without_train_extra(*[a.format(tmp=tmp_path) for a in argv])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"fashionlens: {command} needs the training extra (")
    assert lines[0].endswith(f"is not installed): {EXTRA_HINT}")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "classifier.onnx").exists()


def test_tag_backend_torch_without_train_extra_says_which_extra_in_one_line(tmp_path: Path) -> None:
    photo = tmp_path / "shirt.png"
    Image.fromarray(np.full((64, 48, 3), 200, np.uint8)).save(photo)
    proc = _run_without_train_extra("tag", str(photo), "--whole-image", "--backend", "torch",
                                    "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert EXTRA_HINT in lines[0]


def test_missing_train_module_in_process_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def needs_torch(args: object) -> int:
        raise ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")

    monkeypatch.setattr(cli_train, "_cmd_train_classifier", needs_torch)
    assert cli_main.main(["train", "classifier", "--config", "c.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == ("fashionlens: fashionlens train classifier needs the training extra (torch is not installed): "
                   f"{EXTRA_HINT}\n")


def test_other_missing_module_is_not_blamed_on_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that every install has (here yaml) missing is a broken installation, not a missing extra:
    its error is not turned into the extra's message."""
    def broken(args: object) -> int:
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")

    monkeypatch.setattr(cli_train, "_cmd_train_classifier", broken)
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        cli_main.main(["train", "classifier", "--config", "c.yaml"])
