"""Real-data floor and memorizer baselines (qgen.metrics.baselines) and the held-out split (qgen.data.heldout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qgen.data import DataConfig, load_dataset
from qgen.data.heldout import heldout_split, image_keys
from qgen.errors import QgenError
from qgen.metrics.baselines import memorizer, read_against_baselines, reading, real_floor
from qgen.metrics.frechet import frechet_distance


def _gaussian(n, d=8, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, d))


def test_floor_draws_from_the_pool_at_the_sample_size_and_matches_a_direct_computation():
    pool, ref = _gaussian(300, seed=1), _gaussian(200, seed=2)
    floor = real_floor(pool, ref, 64, n_splits=5, seed=3)
    rng = np.random.default_rng(3)
    direct = [frechet_distance(pool[rng.choice(300, 64, replace=False)], ref) for _ in range(5)]
    assert floor.mean == pytest.approx(np.mean(direct))
    assert floor.sd == pytest.approx(np.std(direct, ddof=1))
    assert (floor.n_samples, floor.n_reference, floor.n_splits) == (64, 200, 5)
    assert "replacement" not in floor.method


def test_floor_from_a_small_pool_says_it_drew_with_replacement():
    floor = real_floor(_gaussian(20, seed=1), _gaussian(100, seed=2), 64, n_splits=3)
    assert "replacement" in floor.method and floor.n_samples == 64


def test_memorizer_replays_every_training_image_evenly():
    train, ref = _gaussian(10, seed=1), _gaussian(100, seed=2)
    exact = memorizer(train, ref, 30)                 # 3 copies each: one deterministic value
    assert exact.n_splits == 1 and exact.sd == 0.0
    assert exact.mean == pytest.approx(frechet_distance(np.tile(train, (3, 1)), ref))
    uneven = memorizer(train, ref, 35, n_splits=4)    # 3 copies + 5 random extra: the splits differ
    assert uneven.n_splits == 4 and uneven.n_samples == 35


def test_floor_is_lower_than_a_shifted_distribution_and_memorizer_of_few_images():
    ref, pool = _gaussian(400, seed=1), _gaussian(400, seed=2)
    floor = real_floor(pool, ref, 128, seed=0)
    few = memorizer(_gaussian(5, seed=3), ref, 128)
    shifted = frechet_distance(_gaussian(128, shift=1.0, seed=4), ref)
    assert floor.mean < few.mean and floor.mean < shifted


def test_reading_names_what_the_numbers_say():
    assert reading(50.0, 0.0, floor=5.0, memorized=20.0) == "under-trained"
    assert reading(8.0, 0.0, floor=5.0, memorized=20.0) == "near-real"
    assert reading(15.0, 0.05, floor=5.0, memorized=20.0) == "generalizing"
    assert reading(6.0, 0.9, floor=5.0, memorized=7.0) == "copying"
    ref = _gaussian(100, seed=2)
    block = read_against_baselines(10.0, 0.1, real_floor(_gaussian(50), ref, 20), memorizer(_gaussian(5), ref, 20))
    assert block["fld_over_floor"] == pytest.approx(10.0 / block["floor"]["mean"])
    assert block["fld_over_memorizer"] == pytest.approx(10.0 / block["memorizer"]["mean"])
    assert block["copy_fraction"] == 0.1 and block["reading"] in ("near-real", "generalizing", "under-trained")


def test_baselines_reject_sizes_they_cannot_use():
    with pytest.raises(QgenError):
        real_floor(_gaussian(10), _gaussian(1), 5)
    with pytest.raises(QgenError):
        memorizer(_gaussian(10), _gaussian(10), 1)


def test_heldout_split_never_overlaps_training_or_itself_and_ignores_the_subset_seed():
    """Offline MNIST (no test split here): validation and test halves of the rest, stable across seeds."""
    cfg = DataConfig(dataset="mnist", classes=(3,), n_train=64, seed=0, download=False)
    train = load_dataset(cfg).images
    held = heldout_split(cfg, train)
    val_keys, test_keys, train_keys = (set(image_keys(x)) for x in (held.validation, held.test, train))
    assert not val_keys & test_keys and not (val_keys | test_keys) & train_keys
    assert len(held.validation) > 100 and len(held.test) > 100
    # another training subset moves no held-out image from validation to test or back
    other_train = load_dataset(DataConfig(dataset="mnist", classes=(3,), n_train=10, seed=5, download=False)).images
    other = heldout_split(cfg, other_train)
    assert not set(image_keys(other.validation)) & set(image_keys(held.test))
    assert not set(image_keys(other.test)) & set(image_keys(held.validation))


def test_heldout_split_uses_official_validation_and_test_splits(pneumonia_npz):
    cfg = DataConfig(dataset=str(pneumonia_npz), n_train=32, seed=0)
    train = load_dataset(cfg).images
    held = heldout_split(cfg, train)
    assert held.origin == "official validation and test splits"
    assert len(held.validation) <= 270 and len(held.test) <= 468 and len(held.test) > 400
    assert not set(image_keys(held.validation)) & set(image_keys(train))
