"""FLOP counting and MFU: counts against hand-computed formulas, the peak table."""

from __future__ import annotations

import pytest

from synthgate.flops import count_flops, mfu, peak_flops

torch = pytest.importorskip("torch")


def test_convolution_and_linear_counts_match_the_formulas() -> None:
    x = torch.rand(2, 3, 8, 8)
    w = torch.rand(4, 3, 3, 3)
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1)) == 2 * 2 * 4 * 8 * 8 * 3 * 3 * 3
    a = torch.rand(5, 7, requires_grad=True)
    b = torch.rand(7, 11, requires_grad=True)
    # forward a @ b, backward grad_a = g @ b.T and grad_b = a.T @ g: three products of 2 * 5 * 7 * 11
    assert count_flops(lambda: (a @ b).sum().backward()) == 3 * 2 * 5 * 7 * 11


def test_attention_is_counted_on_the_cpu() -> None:
    q = torch.rand(2, 4, 50, 16)
    # q @ k^T and scores @ v: two products of 2 * B * H * S * S * D
    expected = 2 * 2 * 2 * 4 * 50 * 50 * 16
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == expected


def test_views_of_parameters_under_no_grad_are_counted() -> None:
    """Torch's per-module tracker fails on these (StyleGAN2's constant input); the global count does not."""

    class Const(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.const = torch.nn.Parameter(torch.rand(3, 4, 4))
            self.conv = torch.nn.Conv2d(3, 2, 1, bias=False)

        def forward(self, n: int) -> torch.Tensor:
            return self.conv(self.const.unsqueeze(0).expand(n, -1, -1, -1))

    m = Const()
    with torch.no_grad():
        assert count_flops(lambda: m(5)) == 2 * 5 * 2 * 4 * 4 * 3


def test_peak_table_and_mfu() -> None:
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("cpu (2 threads)") is None
    assert mfu(10e12, 0.5, 100e12) == pytest.approx(0.2)
    assert mfu(10e12, 0.5, None) is None
