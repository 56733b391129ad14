"""Re-audit a bundle's images against the training set (``release verify --train``).

Two scorers, and a bundle image is a copy when either reaches the release threshold:

* the memorization audit itself (:func:`synthgate.audit.memorization.run_memorization_audit` at the released
  threshold), robust to flips, shifts, rotations and zoom;
* a second, independent and deliberately simple implementation of the score: the channel-averaged Pearson
  correlation over the image channels, maximised over the identity and a horizontal flip, computed exactly
  (float64) block by block. It guards the audit's fast paths with a brute-force reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.errors import InputError

METHOD = ("memorization audit (flips, shifts, rotations, zoom) and an independent channel-mean Pearson r, "
          "identity and horizontal flip, exact float64")


@dataclass(frozen=True)
class ReauditResult:
    """Nearest training image per bundle image.

    Attributes:
        scores: best score of each bundle image (NaN for a constant image).
        nearest: index into the training set of the best match (-1 for a constant image).
        n_flagged: bundle images with score >= the threshold.
    """

    scores: np.ndarray
    nearest: np.ndarray
    n_flagged: int
    method: str = METHOD

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def max_score(self) -> float:
        finite = self.scores[np.isfinite(self.scores)]
        return float(finite.max()) if finite.size else float("nan")


def _features(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n x C x H x W -> (n x C*H*W unit Pearson vectors / sqrt(C), valid mask)."""
    n, c = block.shape[:2]
    x = block.reshape(n, c, -1).astype(np.float64)
    x = x - x.mean(axis=2, keepdims=True)
    norm = np.linalg.norm(x, axis=2, keepdims=True)
    valid = (norm[:, :, 0] > 1e-12).all(axis=1)
    x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 1e-12) / np.sqrt(c)
    return x.reshape(n, -1), valid


def reaudit_bundle(
    train: ImageSet, images: np.ndarray, labels: np.ndarray | None, threshold: float, block_size: int = 512
) -> ReauditResult:
    """Score every bundle image against every training image.

    Args:
        train: the training set (its image channels are compared; the label channel is not).
        images: bundle images, N x C x H x W, image channels only, in ``train``'s image-channel order.
        labels: bundle labels N x H x W (put back in the label channel for the audit; not scored).
        threshold: score at or above which an image is a copy.
        block_size: training images per block (bounds memory).

    Raises:
        InputError: the bundle's images do not match the training set's channels or size.
    """
    img_ch = list(train.image_channels)
    if images.ndim != 4 or images.shape[1:] != (len(img_ch), *train.shape[1:]):
        raise InputError(
            f"--train has {len(img_ch)} image channels of {train.shape[1]}x{train.shape[2]} but the bundle "
            "holds "
            f"images of shape {tuple(images.shape[1:])}; pass the training set the generator was trained on"
        )
    q, q_valid = _features(np.asarray(images, dtype=np.float64))
    q_flip, _ = _features(np.asarray(images[..., ::-1], dtype=np.float64))
    best = np.full(len(q), -np.inf)
    nearest = np.full(len(q), -1, dtype=np.int64)
    for start, block in train.iter_blocks(block_size):
        db, db_valid = _features(block[:, img_ch])
        for qq in (q, q_flip):
            s = qq @ db.T
            s[:, ~db_valid] = -np.inf
            j = s.argmax(axis=1)
            v = s[np.arange(len(q)), j]
            better = v > best
            best[better] = v[better]
            nearest[better] = start + j[better]
    robust, robust_row = _audit_scores(train, images, labels, threshold)
    better = np.nan_to_num(robust, nan=-np.inf) > best
    best[better] = robust[better]
    nearest[better] = robust_row[better]
    best[~q_valid] = np.nan
    nearest[~q_valid] = -1
    return ReauditResult(scores=best, nearest=nearest, n_flagged=int(np.sum(best >= threshold)))


def _audit_scores(train: ImageSet, images: np.ndarray, labels: np.ndarray | None,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Best robust audit score and training row of each bundle image (NaN / -1 for a constant image)."""
    from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit

    n = len(images)
    full = np.zeros((n, *train.shape), dtype=np.float32)
    full[:, list(train.image_channels)] = images
    if train.label_channel is not None and labels is not None:
        full[:, train.label_channel] = labels.reshape(n, *train.shape[1:])
    bundle = ImageSet(
        images=full, ids=tuple(f"bundle-{i:06d}" for i in range(n)), subjects=("bundle",) * n,
        channels=train.channels, label_channel=train.label_channel, label_map=train.label_map,
    )
    result = run_memorization_audit(train, bundle, None, MemorizationConfig(threshold=threshold))
    return result.synthetic.score.astype(np.float64), result.synthetic.train_row.astype(np.int64)
