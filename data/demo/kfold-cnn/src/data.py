"""Synthetic stand-in for a small labelled image set (32x32 RGB, 10 classes)."""

import numpy as np


def load_images(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=n)
    return x, y


def kfold_indices(n, k=5, seed=0):
    """Yield (train_idx, val_idx) pairs of a shuffled k-fold split."""
    order = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(order, k)
    for i in range(k):
        val_idx = folds[i]
        train_idx = np.concatenate([f for j, f in enumerate(folds) if j != i])
        yield train_idx, val_idx
