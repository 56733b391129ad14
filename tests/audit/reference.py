"""Brute-force references the audit's fast paths are checked against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pearson_reference(a: np.ndarray, b: np.ndarray, channels: Sequence[int]) -> float:
    """Channel-averaged Pearson r of two C x H x W images by the textbook formula."""
    rs = [float(np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1]) for c in channels]
    return float(np.mean(rs))
