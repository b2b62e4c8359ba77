"""Implicit-feedback matrix factorisation (alternating least squares, Hu, Koren and Volinsky 2008) in numpy.

The matrix it factorises is small (customers by item attributes, a few dozen columns), so a dense solve per row is
exact and quick, and one seeded start makes it deterministic: no native library, no threads whose order could
change a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_PER_BLOCK = 4096


@dataclass(frozen=True)
class AlsParams:
    """How the factorisation is fitted: factors, ridge, confidence scale, sweeps and the seed of its start."""

    factors: int = 8
    regularization: float = 0.1
    alpha: float = 4.0  # confidence = 1 + alpha * strength of the feedback
    iterations: int = 12
    seed: int = 7


def fit(strength: np.ndarray, params: AlsParams) -> tuple[np.ndarray, np.ndarray]:
    """Row and column factors whose products approximate which cells have feedback, weighted by its strength."""
    rows, cols = strength.shape
    rng = np.random.default_rng(params.seed)
    x = rng.normal(0, 0.1, (rows, params.factors))
    y = rng.normal(0, 0.1, (cols, params.factors))
    preference = (strength > 0).astype(float)
    confidence = 1.0 + params.alpha * strength
    for _ in range(params.iterations):
        x = _solve(y, confidence, preference, params.regularization)
        y = _solve(x, confidence.T, preference.T, params.regularization)
    return x, y


def _solve(fixed: np.ndarray, confidence: np.ndarray, preference: np.ndarray, regularization: float) -> np.ndarray:
    """Each row's least-squares factors against the fixed side: (Y'C_uY + lambda I) x_u = Y'C_u p_u."""
    factors = fixed.shape[1]
    ridge = regularization * np.eye(factors)
    target = (confidence * preference) @ fixed
    solved = np.empty((confidence.shape[0], factors))
    # Y'C_uY for a block of rows at once, as one batched matrix product; blocks bound the memory it takes.
    for start in range(0, confidence.shape[0], ROWS_PER_BLOCK):
        block = confidence[start : start + ROWS_PER_BLOCK]
        gram = np.matmul((block[:, :, None] * fixed[None]).transpose(0, 2, 1), fixed) + ridge
        solved[start : start + ROWS_PER_BLOCK] = np.linalg.solve(gram, target[start : start + ROWS_PER_BLOCK, :, None])[
            ..., 0
        ]
    return solved
