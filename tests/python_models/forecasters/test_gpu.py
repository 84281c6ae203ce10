"""GPU paths: SSA on CuPy agrees with NumPy, the TCN trained on CUDA agrees with the CPU.

Each test runs only where its library sees a CUDA device (CuPy for SSA, torch for the TCN); CI
has none, so they are skipped there and run on a GPU machine (docs/benchmarks.md says when)."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.forecasters.array_module import gpu_module
from python_models.forecasters.ssa import fit_windows


def _torch_sees_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_cupy = pytest.mark.skipif(gpu_module() is np, reason="no CUDA device (CuPy absent or no GPU): CPU path only")
needs_torch_cuda = pytest.mark.skipif(not _torch_sees_cuda(), reason="torch sees no CUDA device: CPU path only")


@needs_cupy
def test_ssa_on_cupy_matches_numpy():
    cupy = gpu_module()
    rng = np.random.default_rng(0)
    levels = np.cumsum(rng.normal(0, 0.01, (64, 757)), axis=1) + np.sin(np.arange(757) / 5)
    cpu = fit_windows(levels, 21)
    gpu = fit_windows(cupy.asarray(levels), 21, xp=cupy)
    for name in ("beta", "projection", "phi", "rank", "energy", "error_var"):
        assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=1e-8, atol=1e-12, err_msg=name)


@needs_torch_cuda
def test_tcn_trained_on_cuda_matches_the_cpu():
    """Same seed, same data: the network trained on the GPU forecasts what the CPU's does, to
    float32 training noise (cuDNN's convolutions sum in another order than the CPU's), and
    two CUDA fits give the same forecasts."""
    from python_models.forecasters.neural import TemporalConvNet

    rng = np.random.default_rng(3)
    index = pd.bdate_range("2015-01-01", periods=700)
    # an AR(1) the network can learn, so the forecasts are not all near zero
    shocks = rng.normal(0, 0.01, len(index))
    values = np.zeros(len(index))
    for t in range(1, len(index)):
        values[t] = 0.3 * values[t - 1] + shocks[t]
    returns = pd.Series(values, index=index)
    train, origins = returns.iloc[:600], returns.index[600:690]

    def forecast(device: str) -> np.ndarray:
        model = TemporalConvNet(max_epochs=40, horizons=(1, 5), device=device)
        fit = model.fit(train)
        assert fit.device == device
        return fit.forecast(returns, origins, (1, 5)).mean

    cpu, gpu, again = forecast("cpu"), forecast("cuda"), forecast("cuda")
    assert np.corrcoef(cpu[:, 0], returns.shift(-1).loc[origins].to_numpy())[0, 1] > 0.1  # it learned the AR
    assert_allclose(gpu, cpu, rtol=0, atol=2e-3 * np.abs(cpu).max())
    assert_allclose(again, gpu, rtol=0, atol=1e-5 * np.abs(cpu).max())
