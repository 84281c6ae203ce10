"""Index arrays of the circular block bootstrap, shared by the resamplings that draw whole blocks."""

from __future__ import annotations

import numpy as np


def circular_block_indices(rng: np.random.Generator, n: int, length: int, block: int, draws: int) -> np.ndarray:
    """``draws`` x ``length`` positions into a series of ``n``: blocks of ``block`` consecutive positions from
    uniform starts, wrapping past the end (circular), concatenated and cut to ``length``."""
    starts = rng.integers(0, n, size=(draws, -(-length // block)))
    return ((starts[:, :, None] + np.arange(block)) % n).reshape(draws, -1)[:, :length]
