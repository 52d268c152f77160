"""Sharing diagnostics: weight SNR across positions, the (positions x kernel) spectrum, picture."""

from __future__ import annotations

import itertools
import math

import matplotlib
import pytest
import torch
from torch import nn

import locality
from locality.analysis import interior_positions, kernel_spectrum, position_kernels, weight_snr
from locality.convert import localize, to_locally_connected

matplotlib.use("Agg")

F64 = torch.float64


def _snr_loop(weight: torch.Tensor, mask: torch.Tensor) -> float:
    """Pogodin's SNR by hand: every tap's |mean| / std over the interior positions, averaged."""
    rows = [weight[p] for p in itertools.product(*map(range, mask.shape)) if mask[p]]
    stacked = torch.stack(rows).double().flatten(1)
    ratios = []
    for tap in stacked.T:
        mean = sum(tap.tolist()) / len(tap)
        var = sum((v - mean) ** 2 for v in tap.tolist()) / (len(tap) - 1)
        ratios.append(abs(mean) / math.sqrt(var))
    return sum(ratios) / len(ratios)


def test_interior_positions_read_no_padding():
    # 1-D, kernel 3, padding 1, stride 2, input 9: positions 0..4 read [2p-1, 2p+1]
    layer = locality.LocallyConnected1d(1, 1, 3, input_size=9, stride=2, padding=1)
    assert interior_positions(layer).tolist() == [False, True, True, True, False]
    # 2-D, dilation 2, padding 2, input 6x5: rows read [p-2, p+2], so only p in [2, 3] of 6 rows
    layer2 = locality.LocallyConnected2d(1, 1, 3, input_size=(6, 5), padding=2, dilation=2)
    mask = interior_positions(layer2)
    rows, cols = mask.any(1).nonzero().flatten().tolist(), mask.any(0).nonzero().flatten().tolist()
    assert rows == [2, 3] and cols == [2] and int(mask.sum()) == 2


def test_snr_is_infinite_for_a_layer_made_from_a_convolution_and_finite_after_noise():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=F64)
    local = to_locally_connected(conv, (6, 7))
    assert weight_snr(local) == math.inf
    noisy = localize(nn.Sequential(conv), torch.randn(1, 2, 6, 7, dtype=F64), noise=0.3)[0]
    snr = weight_snr(noisy)
    assert math.isfinite(snr) and snr > 0
    assert snr == pytest.approx(_snr_loop(noisy.weight.detach(), interior_positions(noisy)))


def test_snr_ignores_the_border_and_the_conv_and_tiled_readings_agree():
    torch.manual_seed(1)
    conv = nn.Conv1d(2, 2, 3, padding=1)
    local = to_locally_connected(conv, 8)
    with torch.no_grad():  # spoil only the border positions
        local.weight[0].add_(1.0)
        local.weight[-1].sub_(1.0)
    assert weight_snr(local) == math.inf
    assert weight_snr(conv, input_size=8) == math.inf
    tiled = locality.TiledConv1d(2, 2, 3, tile_size=2, padding=1)
    kernels = position_kernels(tiled, 8)
    assert kernels.shape == (8, 2, 2, 3)
    assert torch.equal(kernels[5], tiled.weight[1]) and torch.equal(kernels[4], tiled.weight[0])
    with pytest.raises(ValueError, match="input_size"):
        weight_snr(tiled)


def test_spectrum_rank_one_from_a_convolution_and_rank_k_for_a_mix_of_k_kernels():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=F64)
    spectrum = kernel_spectrum(to_locally_connected(conv, (5, 5)))
    assert (spectrum.positions, spectrum.kernel_size) == (25, 4 * 3 * 9)
    assert spectrum.rank_90 == spectrum.rank_99 == 1
    assert spectrum.singular_values[1] < 1e-12 * spectrum.singular_values[0]
    # position p's kernel = sum_k a[p, k] B_k with 3 random bases: rank 3 exactly
    local = locality.LocallyConnected1d(2, 2, 3, input_size=12, dtype=F64)
    bases, mix = torch.randn(3, 2, 2, 3, dtype=F64), torch.randn(10, 3, dtype=F64)
    with torch.no_grad():
        local.weight.copy_(torch.einsum("pk,koci->poci", mix, bases))
    spectrum = kernel_spectrum(local)
    reference = torch.linalg.svdvals(local.weight.detach().reshape(10, -1))
    torch.testing.assert_close(spectrum.singular_values, reference)
    assert spectrum.rank(0.999999) == 3
    energy = spectrum.energy
    assert energy[-1] == pytest.approx(1.0) and spectrum.rank_90 <= 3
    squares = reference.square()
    assert energy[0] == pytest.approx((squares[0] / squares.sum()).item())


def test_rank_refuses_bad_energy_and_zero_layers_have_rank_zero():
    local = locality.LocallyConnected1d(1, 1, 2, input_size=4)
    with torch.no_grad():
        local.weight.zero_()
    assert kernel_spectrum(local).rank_99 == 0
    assert math.isnan(weight_snr(local))
    with pytest.raises(ValueError, match="energy must be in"):
        kernel_spectrum(local).rank(1.5)
    with pytest.raises(TypeError, match="position_kernels: layer must be"):
        weight_snr(nn.Linear(2, 2))


def test_spectrum_figure(tmp_path):
    from matplotlib.figure import Figure

    from locality.draw import spectrum_figure

    torch.manual_seed(3)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    noisy = localize(nn.Sequential(conv), torch.randn(1, 2, 8, 8), noise=0.2)[0]
    spectrum = kernel_spectrum(noisy)
    figure = spectrum_figure(spectrum)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert len(ax.lines[0].get_xdata()) == len(spectrum.singular_values)
    assert ax.lines[0].get_ydata()[0] == pytest.approx(1.0)
    figure.savefig(tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 1000
    with pytest.raises(TypeError, match="spectrum must be a Spectrum"):
        spectrum_figure(noisy)


def test_a_lowrank_layer_has_at_most_its_rank_and_snr_reads_its_mixed_kernels():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=F64))
    x = torch.randn(1, 2, 7, 7, dtype=F64)
    exact = localize(model, x, to="lowrank", rank=3)[0]
    assert kernel_spectrum(exact).rank(0.999999) == 1  # every position the convolution's kernel
    assert weight_snr(exact) > 1e6  # equal up to rounding of the 1/3 mix
    noisy = localize(model, x, to="lowrank", rank=3, noise=1.0)[0]
    spectrum = kernel_spectrum(noisy)
    assert spectrum.rank(0.999999) == 3 and spectrum.singular_values[3] < 1e-12
    assert math.isfinite(weight_snr(noisy))
