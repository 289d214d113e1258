import numpy as np
import pytest

from fashionlens.grading.item import DAMAGE_TYPES
from fashionlens.grading.synthetic_damage import (
    DamageStyle,
    add_synthetic_damage,
    blob_mask,
    plain_background_mask,
)


def _garment_photo(h: int = 160, w: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = np.full((h, w, 3), 245, np.uint8)
    garment = np.zeros((h, w), bool)
    garment[20:140, 15:80] = True
    cloth = np.array([40, 90, 160]) + rng.integers(-10, 10, (h, w, 3))
    rgb[garment] = np.clip(cloth[garment], 0, 255).astype(np.uint8)
    return rgb, garment


@pytest.mark.parametrize("kind", DAMAGE_TYPES)
def test_each_type_paints_inside_the_garment_and_labels_it(kind):
    rgb, garment = _garment_photo()
    img, dmap, regions = add_synthetic_damage(rgb, garment, rng=np.random.default_rng(3), n_regions=1, types=[kind])
    assert len(regions) == 1 and regions[0].type == kind
    k = DAMAGE_TYPES.index(kind) + 1
    assert (dmap == k).any()
    assert not dmap[~garment].any()  # never outside the garment
    assert regions[0].area_share == pytest.approx((dmap == k).sum() / garment.sum())
    assert not np.array_equal(img, rgb)  # something was drawn
    assert np.array_equal(img[~garment], rgb[~garment])
    assert np.array_equal(rgb, _garment_photo()[0])  # input untouched


def test_same_seed_same_damage_and_different_seed_differs():
    rgb, garment = _garment_photo()
    a = add_synthetic_damage(rgb, garment, rng=np.random.default_rng(7))
    b = add_synthetic_damage(rgb, garment, rng=np.random.default_rng(7))
    c = add_synthetic_damage(rgb, garment, rng=np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_holes_show_something_much_darker_or_the_backdrop():
    rgb, garment = _garment_photo()
    for seed in range(6):
        img, dmap, _regions = add_synthetic_damage(rgb, garment, rng=np.random.default_rng(seed), n_regions=1,
                                                  types=["hole"])
        hole = dmap == DAMAGE_TYPES.index("hole") + 1
        before, after = rgb[hole].astype(float).mean(0), img[hole].astype(float).mean(0)
        assert np.abs(after - before).max() > 25


@pytest.mark.parametrize("kind", ["stain", "fading"])
def test_stains_and_fading_are_labelled_only_where_the_photo_visibly_changed(kind):
    rgb, garment = _garment_photo()
    black = rgb.copy()
    black[garment] = 6  # dark stains barely change black cloth
    k = DAMAGE_TYPES.index(kind) + 1
    unchanged_labels = 0
    for photo in (rgb, black):
        for seed in range(8):
            img, dmap, _ = add_synthetic_damage(photo, garment, rng=np.random.default_rng(seed), n_regions=1,
                                                types=[kind])
            change = np.abs(img.astype(float) - photo.astype(float)).max(axis=2)
            assert (change[dmap == k] > 12).all()
            unchanged_labels += int((dmap == k).sum() == 0)
    if kind == "stain":
        assert unchanged_labels > 0  # dark stains on black cloth leave nothing to see, and no label


def test_empty_garment_gives_no_damage_and_bad_inputs_raise():
    rgb, _ = _garment_photo()
    img, dmap, regions = add_synthetic_damage(rgb, np.zeros(rgb.shape[:2], bool), rng=np.random.default_rng(0))
    assert regions == [] and not dmap.any() and np.array_equal(img, rgb)
    with pytest.raises(ValueError, match="garment mask of shape"):
        add_synthetic_damage(rgb, np.ones((3, 3), bool), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        add_synthetic_damage(rgb.astype(np.float32), np.ones(rgb.shape[:2], bool), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown damage type"):
        add_synthetic_damage(rgb, _garment_photo()[1], rng=np.random.default_rng(0), n_regions=1, types=["burn"])
    with pytest.raises(ValueError, match="type_weights"):
        DamageStyle(type_weights=(1.0, 1.0))


def test_blob_mask_is_soft_and_roughly_the_asked_size():
    m = blob_mask((200, 200), (100, 100), 30, np.random.default_rng(1))
    assert m.min() >= 0 and m.max() <= 1
    area = (m > 0.5).sum()
    assert 0.4 * np.pi * 30**2 < area < 2.0 * np.pi * 30**2


def test_plain_background_mask_finds_the_garment():
    rgb, garment = _garment_photo()
    found = plain_background_mask(rgb)
    assert found is not None
    iou = (found & garment).sum() / (found | garment).sum()
    assert iou > 0.9
    assert plain_background_mask(np.full((64, 64, 3), 250, np.uint8)) is None
