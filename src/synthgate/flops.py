"""Counting the floating-point work of a training step and comparing it with the device's peak (MFU).

``count_flops`` runs a callable under torch's ``FlopCounterMode`` (matrix products, convolutions and attention,
forward and backward; element-wise work is not counted, as is usual for model FLOPs utilisation). Two gaps of
the stock counter are closed here: attention on the CPU (``_scaled_dot_product_flash_attention_for_cpu`` has no
formula) and models whose forward under ``no_grad`` makes views of parameters (the counter's per-module
tracker then fails with "Expected gradient function to be set"); only the global total is kept.

The peak table holds dense bf16 tensor-core figures from the vendors' data sheets (no sparsity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Dense bf16 peak in FLOP/s by a substring of ``torch.cuda.get_device_name()`` (first match wins).
BF16_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
)


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a device named like ``torch.cuda.get_device_name()``, or ``None`` if unknown."""
    for key, value in BF16_PEAK_FLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s module tracker: every count goes to ``Global``."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _cpu_attention_formulas() -> dict[Any, Any]:
    """Formulas (on shapes, as ``custom_mapping`` expects) for the CPU flash-attention kernels."""
    import torch
    from torch.utils import flop_counter

    def forward(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(flop_counter.sdpa_flop_count(q, k, v))

    def backward(grad: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(flop_counter.sdpa_backward_flop_count(grad, q, k, v))

    aten = torch.ops.aten
    out: dict[Any, Any] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        out[aten._scaled_dot_product_flash_attention_for_cpu] = forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        out[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return out


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations torch dispatches while ``fn()`` runs (``fn`` runs once).

    A multiply-add counts as two operations, as in torch's counter and in vendors' peak figures.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    counter.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    with counter:
        fn()
    return counter.get_total_flops()


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over ``peak`` (``None`` when the peak is unknown)."""
    if peak is None or peak <= 0 or seconds_per_step <= 0:
        return None
    return flops_per_step / seconds_per_step / peak
