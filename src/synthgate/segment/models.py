"""The segmentation networks of the utility audit: MONAI's 2D U-Net and SwinUNETR.

Both map ``in_channels`` image channels to three logits, one per BraTS region (WT, TC, ET), trained with a
sigmoid per region (multi-label): the regions nest (ET inside TC inside WT), which a softmax over the source
label values cannot express across label conventions, and a per-region output is what the audit evaluates.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from synthgate.errors import UsageError

if TYPE_CHECKING:
    from torch import nn


class Net(StrEnum):
    """Segmentation network choices."""

    UNET = "unet"
    SWINUNETR = "swinunetr"


#: SwinUNETR downsamples five times: height and width must be multiples of this (and >= 64: its deepest
#: instance norm needs more than one pixel).
SWIN_DIVISOR = 32


def check_size(net: Net | str, height: int, width: int) -> None:
    """Raise :class:`UsageError` if ``net`` cannot take ``height`` x ``width`` images."""
    net = Net(net)
    if net is Net.SWINUNETR and (height % SWIN_DIVISOR or width % SWIN_DIVISOR or min(height, width) < 64):
        raise UsageError(
            f"--net swinunetr needs images of at least 64x64 whose height and width are multiples of "
            f"{SWIN_DIVISOR}, got {height}x{width}; ingest with --size 64/128/256 or use --net unet"
        )
    if net is Net.UNET and (height % 16 or width % 16):
        raise UsageError(
            f"--net unet needs images whose height and width are multiples of 16, got {height}x{width}; "
            "ingest with --size 64/128/256"
        )


def build_model(net: Net | str, in_channels: int, out_channels: int, width: int = 16) -> nn.Module:
    """Build a 2D segmentation network.

    Args:
        net: ``unet`` (MONAI ``UNet``, four down-sampling levels with residual units) or ``swinunetr``.
        in_channels: image channels (the label channel excluded).
        out_channels: output logits (3: WT, TC, ET).
        width: channels of the first level (U-Net) or the feature size (SwinUNETR; a multiple of 12).

    Returns:
        The network, on the CPU, in training mode.

    Raises:
        UsageError: a channel count or width out of range.
    """
    if in_channels < 1 or out_channels < 1:
        raise UsageError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    net = Net(net)
    if net is Net.UNET:
        from monai.networks.nets import UNet

        if width < 1:
            raise UsageError(f"U-Net width must be >= 1, got {width}")
        return UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=(width, 2 * width, 4 * width, 8 * width, 16 * width),
            strides=(2, 2, 2, 2),
            num_res_units=2,
            norm="batch",
        )
    from monai.networks.nets import SwinUNETR

    if width < 12 or width % 12:
        raise UsageError(f"SwinUNETR feature size must be a positive multiple of 12, got {width}")
    return SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        feature_size=width,
        spatial_dims=2,
        use_v2=True,
    )
