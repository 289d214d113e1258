"""Masked multi-task losses: set-valued cross-entropy and per-head label masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fashionlens.models.heads import HeadSpec
from fashionlens.train.losses import multitask_loss, set_cross_entropy

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def _one_hot_mask(y: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(y, c).bool()


def test_single_class_mask_equals_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    got = set_cross_entropy(logits, _one_hot_mask(y, 5))
    assert torch.allclose(got, F.cross_entropy(logits, y, reduction="none"), atol=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_single_class_mask_with_label_smoothing_equals_cross_entropy(eps: float) -> None:
    torch.manual_seed(1)
    logits = torch.randn(4, 7)
    y = torch.tensor([6, 0, 3, 3])
    got = set_cross_entropy(logits, _one_hot_mask(y, 7), label_smoothing=eps)
    want = F.cross_entropy(logits, y, reduction="none", label_smoothing=eps)
    assert torch.allclose(got, want, atol=1e-6)


def test_set_mask_is_minus_log_of_the_set_probability() -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 6)
    allowed = torch.zeros(3, 6, dtype=torch.bool)
    allowed[0, [1, 2]] = True
    allowed[1, [0, 3, 5]] = True
    allowed[2, :] = True  # everything allowed: loss 0
    p = logits.softmax(-1)
    want = torch.stack([-(p[0, 1] + p[0, 2]).log(), -(p[1, 0] + p[1, 3] + p[1, 5]).log(), torch.tensor(0.0)])
    got = set_cross_entropy(logits, allowed)
    assert torch.allclose(got, want, atol=1e-6)


def test_set_loss_never_exceeds_the_loss_of_any_member() -> None:
    torch.manual_seed(3)
    logits = torch.randn(8, 5)
    allowed = torch.zeros(8, 5, dtype=torch.bool)
    allowed[:, [1, 3]] = True
    set_loss = set_cross_entropy(logits, allowed)
    for c in (1, 3):
        single = F.cross_entropy(logits, torch.full((8,), c), reduction="none")
        assert (set_loss <= single + 1e-6).all()


def test_rows_without_allowed_class_give_zero_and_finite_gradients() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    allowed = torch.tensor([[True, False, False, False], [False] * 4, [False, True, True, False]])
    for eps in (0.0, 0.1):
        loss = set_cross_entropy(logits, allowed, label_smoothing=eps)
        assert loss[1].item() == 0.0
        assert torch.isfinite(loss).all()
        logits.grad = None
        loss.sum().backward()
        assert torch.isfinite(logits.grad).all()
        assert torch.equal(logits.grad[1], torch.zeros(4))


def test_label_smoothing_path_is_finite_with_extreme_logits() -> None:
    logits = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]])
    allowed = torch.tensor([[False, True, True], [True, False, False]])
    loss = set_cross_entropy(logits, allowed, label_smoothing=0.1)
    assert torch.isfinite(loss).all()
    assert (loss > 0).all()


# --- multitask_loss ---------------------------------------------------------------------------

HEADS = (
    HeadSpec("category", "single", ("a", "b", "c", "d")),
    HeadSpec("pattern", "single", ("plain", "striped", "floral")),
    HeadSpec("colours", "multi", ("black", "white", "red")),
)


def _outputs(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, h.num_outputs, generator=g) for h in HEADS)


def _targets(n: int = 4) -> dict[str, torch.Tensor]:
    cat = torch.zeros(n, 4, dtype=torch.bool)
    cat[0, 0] = True
    cat[1, [2, 3]] = True
    cat[2, 1] = True  # row 3: no category label
    return {
        "category": cat,
        "pattern": torch.tensor([1, -1, -1, 2]),
        "colours": torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]]),
        "colours_valid": torch.tensor([True, False, True, False]),
    }


def test_multitask_loss_is_the_weighted_sum_of_masked_means() -> None:
    outputs, t = _outputs(), _targets()
    weights = {"category": 1.0, "pattern": 0.5, "colours": 2.0}
    total, parts = multitask_loss(outputs, t, HEADS, weights=weights)
    cat = set_cross_entropy(outputs[0], t["category"])[:3].mean()
    pat = F.cross_entropy(outputs[1][[0, 3]], torch.tensor([1, 2]))
    col = F.binary_cross_entropy_with_logits(outputs[2][[0, 2]], t["colours"][[0, 2]])
    assert parts == pytest.approx({"category": cat.item(), "pattern": pat.item(), "colours": col.item()}, rel=1e-5)
    assert total.item() == pytest.approx(cat.item() + 0.5 * pat.item() + 2.0 * col.item(), rel=1e-5)


def test_heads_without_labels_are_ignored() -> None:
    outputs = _outputs()
    t = _targets()
    t["pattern"] = torch.full((4,), -1)
    t["colours_valid"] = torch.zeros(4, dtype=torch.bool)
    total, parts = multitask_loss(outputs, t, HEADS, weights={})
    assert set(parts) == {"category"}
    assert total.item() == pytest.approx(parts["category"], rel=1e-6)
    assert math.isfinite(total.item())


def test_no_labels_at_all_gives_zero_loss() -> None:
    outputs = tuple(o.requires_grad_() for o in _outputs())
    t = _targets()
    t["category"] = torch.zeros(4, 4, dtype=torch.bool)
    t["pattern"] = torch.full((4,), -1)
    t["colours_valid"] = torch.zeros(4, dtype=torch.bool)
    total, parts = multitask_loss(outputs, t, HEADS, weights={})
    assert parts == {}
    assert total.item() == 0.0


def test_zero_weight_skips_a_head() -> None:
    total, parts = multitask_loss(_outputs(), _targets(), HEADS, weights={"pattern": 0.0})
    assert "pattern" not in parts
    assert set(parts) == {"category", "colours"}


def test_sample_weights_change_only_the_category_term() -> None:
    outputs, t = _outputs(), _targets()
    _, plain = multitask_loss(outputs, t, HEADS, weights={})
    sw = torch.tensor([3.0, 1.0, 0.5, 10.0])
    _, weighted = multitask_loss(outputs, t, HEADS, weights={}, sample_weight=sw)
    per = set_cross_entropy(outputs[0], t["category"])[:3]
    want = (per * sw[:3]).sum() / sw[:3].sum()
    assert weighted["category"] == pytest.approx(want.item(), rel=1e-5)
    assert weighted["category"] != pytest.approx(plain["category"], rel=1e-3)
    assert weighted["pattern"] == plain["pattern"]
    assert weighted["colours"] == plain["colours"]


def test_label_smoothing_reaches_single_heads_but_not_multi_heads() -> None:
    outputs, t = _outputs(), _targets()
    _, plain = multitask_loss(outputs, t, HEADS, weights={})
    _, smooth = multitask_loss(outputs, t, HEADS, weights={}, label_smoothing=0.1)
    assert smooth["category"] != pytest.approx(plain["category"])
    assert smooth["pattern"] != pytest.approx(plain["pattern"])
    assert smooth["colours"] == plain["colours"]


def test_multitask_loss_backpropagates() -> None:
    outputs = tuple(o.clone().requires_grad_() for o in _outputs())
    total, _ = multitask_loss(outputs, _targets(), HEADS, weights={}, label_smoothing=0.1)
    total.backward()
    for o in outputs:
        assert o.grad is not None and torch.isfinite(o.grad).all()
