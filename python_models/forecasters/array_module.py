"""One switch between NumPy and CuPy for the linear algebra of the SSA models.

``gpu_module()`` is CuPy when it is installed and sees a CUDA device, NumPy otherwise;
``xp_for(a)`` is the module an array belongs to. Code written against ``xp`` runs on
either; results come back to the host with ``to_numpy``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def gpu_module():
    """CuPy when a CUDA device is usable, else NumPy (CPU fallback)."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # not installed, no driver, no device: all mean "use the CPU"
        pass
    return np


def xp_for(array) -> object:
    """The array module (numpy or cupy) of ``array``."""
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_numpy(array) -> np.ndarray:
    """A host (NumPy) copy of a NumPy or CuPy array."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)
