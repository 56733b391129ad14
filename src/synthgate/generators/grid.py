"""PNG sample grids: one row per sample, one column per channel; the label channel in colour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from synthgate.atomic import atomic_write_bytes

# background black, then red, green, yellow, blue, magenta for label values in increasing order
PALETTE = np.array(
    [[0, 0, 0], [230, 40, 40], [40, 200, 60], [250, 220, 40], [60, 110, 250], [220, 60, 220]], dtype=np.uint8
)


def grid_image(
    images: np.ndarray, label_channel: int | None, label_values: tuple[int, ...], min_tile: int = 96
) -> np.ndarray:
    """H x W x 3 uint8 grid of N x C x H x W set values (images in [0, 1], labels as label values).

    Tiles are upscaled by an integer factor (nearest) to at least ``min_tile`` pixels; 2-pixel grey gutters.
    """
    n, c, h, w = images.shape
    f = max(1, -(-min_tile // max(h, w)))
    th, tw, gap = h * f, w * f, 2
    out = np.full((n * (th + gap) + gap, c * (tw + gap) + gap, 3), 96, dtype=np.uint8)
    for i in range(n):
        for j in range(c):
            x = images[i, j]
            if j == label_channel:
                idx = np.searchsorted(np.asarray(label_values), np.rint(x).astype(np.int64))
                tile = PALETTE[np.clip(idx, 0, len(PALETTE) - 1) % len(PALETTE)]
            else:
                g = (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                tile = np.repeat(g[..., None], 3, axis=-1)
            tile = tile.repeat(f, axis=0).repeat(f, axis=1)
            y0, x0 = gap + i * (th + gap), gap + j * (tw + gap)
            out[y0 : y0 + th, x0 : x0 + tw] = tile
    return out


def save_grid(path: Path, images: np.ndarray, label_channel: int | None, label_values: tuple[int, ...]) -> Path:
    """Write :func:`grid_image` as a PNG (atomically) and return the path."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid_image(images, label_channel, label_values)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
