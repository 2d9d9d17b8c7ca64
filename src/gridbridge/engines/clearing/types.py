"""Array type aliases shared by the clearing engines."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
Int8Array: TypeAlias = NDArray[np.int8]
BoolArray: TypeAlias = NDArray[np.bool_]


def sum_by(index: NDArray[np.int64], weights: NDArray[np.float64], n: int) -> FloatArray:
    """Sum ``weights`` into ``n`` bins by ``index`` (``np.bincount`` typed as float64)."""
    out: FloatArray = np.bincount(index, weights=weights, minlength=n).astype(np.float64, copy=False)
    return out
