"""GPU path: SSA on CuPy agrees with NumPy. Runs only where CuPy sees a CUDA device."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from python_models.forecasters.array_module import gpu_module
from python_models.forecasters.ssa import fit_windows

pytestmark = pytest.mark.skipif(gpu_module() is np, reason="no CUDA device (CuPy absent or no GPU): CPU path only")


def test_ssa_on_cupy_matches_numpy():
    cupy = gpu_module()
    rng = np.random.default_rng(0)
    levels = np.cumsum(rng.normal(0, 0.01, (64, 757)), axis=1) + np.sin(np.arange(757) / 5)
    cpu = fit_windows(levels, 21)
    gpu = fit_windows(cupy.asarray(levels), 21, xp=cupy)
    for name in ("beta", "projection", "phi", "rank", "energy", "error_var"):
        assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=1e-8, atol=1e-12, err_msg=name)
