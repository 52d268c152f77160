"""A tiny synthetic classification set for the training tests: one pattern per class, placed at
a random offset in noise. Built in milliseconds, unlike MNIST-1D, whose generator takes seconds."""

from __future__ import annotations

import numpy as np
import torch

from locality.train.data import Data


def bumps(
    d: int = 1,
    n_train: int = 400,
    n_test: int = 200,
    size: int = 16,
    classes: int = 4,
    max_offset: int = 3,
    seed: int = 0,
) -> Data:
    """Inputs ``(N, 1, *(size,) * d)``: class ``k``'s random 5-wide (5x5) pattern at an offset in
    ``[0, max_offset]`` per dimension, plus Gaussian noise of std 0.3."""
    rng = np.random.RandomState(seed)
    patterns = rng.choice([-1.0, 1.0], size=(classes, *(5,) * d))
    n = n_train + n_test
    labels = rng.randint(classes, size=n)
    x = 0.3 * rng.randn(n, 1, *(size,) * d)
    for i, label in enumerate(labels):
        at = tuple(slice(o, o + 5) for o in rng.randint(max_offset + 1, size=d))
        x[(i, 0, *at)] += patterns[label]
    x_t = torch.tensor(x, dtype=torch.float32)
    y_t = torch.tensor(labels, dtype=torch.int64)
    return Data(f"bumps{d}d", x_t[:n_train], y_t[:n_train], x_t[n_train:], y_t[n_train:], classes)
