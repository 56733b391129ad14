"""The phantom cohort: procedural 3D brain-tumour phantoms, so synthgate runs anywhere without a download.

Each subject is deterministic given ``(seed, subject index)``: a head whose brain is a randomly deformed
ellipsoid with a cerebrospinal-fluid rim, a grey-matter cortex and white matter inside, two deformed lateral
ventricles, and one tumour at a random position with a necrotic core, an enhancing rim and surrounding oedema
of random sizes. Four sequences get MRI-like contrasts:

| tissue | T1 | T1c | T2 | FLAIR |
|---|---|---|---|---|
| CSF | dark | dark | bright | dark (suppressed) |
| grey matter | mid | mid | mid-bright | mid |
| white matter | bright | bright | mid-dark | mid-dark |
| oedema | mid-dark | mid-dark | bright | bright |
| necrosis | dark | dark | bright | dark-mid |
| enhancing rim | mid | very bright | mid | mid-bright |

then a smooth multiplicative bias field and Rician noise. Written skull-stripped, BraTS-2021 style
(``<subject>/<subject>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 1 necrosis, 2 oedema, 4 enhancing, int16
intensities, LPS affine like BraTS), so phantoms go through the same ingest path as real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgate.atomic import atomic_dir
from synthgate.errors import UsageError

# tissue -> (t1, t1c, t2, flair)
CONTRAST: dict[str, tuple[float, float, float, float]] = {
    "csf": (0.20, 0.22, 1.00, 0.10),
    "gm": (0.55, 0.57, 0.70, 0.62),
    "wm": (0.80, 0.82, 0.45, 0.48),
    "oedema": (0.42, 0.44, 0.92, 1.00),
    "necrosis": (0.15, 0.17, 0.95, 0.30),
    "enhancing": (0.55, 1.00, 0.60, 0.75),
}
SEQUENCE_SUFFIX = ("t1", "t1ce", "t2", "flair")
NECROSIS, OEDEMA, ENHANCING = 1, 2, 4


@dataclass(frozen=True)
class PhantomSubject:
    """One phantom: four X x Y x Z sequences (RAS), the label volume and the voxel spacing in mm."""

    name: str
    sequences: dict[str, np.ndarray]
    label: np.ndarray
    spacing: tuple[float, float, float]


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], grid: int, amplitude: float) -> np.ndarray:
    """A smooth random field: coarse Gaussian noise upsampled linearly."""
    from scipy.ndimage import zoom

    coarse = rng.normal(0.0, amplitude, size=(grid, grid, grid))
    field = zoom(coarse, [s / grid for s in shape], order=1, mode="nearest", grid_mode=True)
    return field[: shape[0], : shape[1], : shape[2]]


def make_phantom(index: int, seed: int = 0, shape: tuple[int, int, int] = (128, 128, 96),
                 tumour_scale: float = 1.0) -> PhantomSubject:
    """Make phantom subject ``index`` of the cohort with ``seed``.

    ``tumour_scale`` multiplies every tumour radius (core, necrosis, oedema): at low resolution (the demo's
    32 px slices) the default tumour cores span a few pixels, too few for a small generator to learn.
    """
    if min(shape) < 16:
        raise UsageError(f"phantom shape must be at least 16 voxels a side, got {shape}")
    if not 0.0 < tumour_scale <= 3.0:
        raise UsageError(f"phantom tumour_scale must be in (0, 3], got {tumour_scale}")
    rng = np.random.default_rng([seed, index])
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    # brain: deformed ellipsoid (radial distance with a smooth random perturbation)
    radii = np.array([0.72, 0.86, 0.78]) * rng.uniform(0.9, 1.05, size=3)
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + ((z + 0.1) / radii[2]) ** 2)
    r = r + _smooth_field(rng, shape, 5, 0.05)
    head = r < 1.0
    brain = r < 0.93
    wm = r < 0.78 + _smooth_field(rng, shape, 7, 0.04)
    # lateral ventricles: two deformed ellipsoids beside the midline
    vent = np.zeros(shape, dtype=bool)
    vsize = rng.uniform(0.8, 1.3)
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.08, 0.14)
        rv = np.sqrt(((x - cx) / (0.07 * vsize)) ** 2 + ((y + 0.05) / (0.30 * vsize)) ** 2 + ((z - 0.05) / 0.13) ** 2)
        vent |= rv + _smooth_field(rng, shape, 4, 0.08) < 1.0
    tissue = np.full(shape, "", dtype=object)
    # tumour: a deformed blob inside the white matter, away from the ventricles
    label = np.zeros(shape, dtype=np.int16)
    for _ in range(100):
        centre = rng.uniform([-0.45, -0.5, -0.3], [0.45, 0.5, 0.45])
        if abs(centre[0]) > 0.2 or abs(centre[1]) > 0.35:
            break
    core_r = rng.uniform(0.08, 0.18) * tumour_scale
    oedema_r = core_r * rng.uniform(1.4, 2.1)
    necrosis_frac = rng.uniform(0.3, 0.65)
    d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    d = d * (1.0 + _smooth_field(rng, shape, 6, 0.18))
    label[(d < oedema_r) & brain] = OEDEMA
    label[(d < core_r) & brain] = ENHANCING
    label[(d < core_r * necrosis_frac) & brain] = NECROSIS
    # tissue classes, later assignments win
    classes = {
        "csf": head,
        "gm": brain,
        "wm": wm & brain,
        "csf_v": vent & brain & (label == 0),
    }
    seqs = [np.zeros(shape, dtype=np.float32) for _ in range(4)]
    for name, mask in classes.items():
        for k in range(4):
            seqs[k][mask] = CONTRAST[name.split("_")[0]][k]
    for value, name in ((OEDEMA, "oedema"), (ENHANCING, "enhancing"), (NECROSIS, "necrosis")):
        for k in range(4):
            seqs[k][label == value] = CONTRAST[name][k]
    del tissue
    bias = np.exp(_smooth_field(rng, shape, 3, 0.12))
    out: dict[str, np.ndarray] = {}
    for k, suffix in enumerate(SEQUENCE_SUFFIX):
        texture = 1.0 + _smooth_field(rng, shape, 16, 0.04)
        v = seqs[k] * bias * texture
        sigma = 0.025
        noisy = np.sqrt((v + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
        noisy[~head] = 0.0
        out[suffix] = np.rint(noisy * 1000.0).astype(np.int16)
    spacing = tuple(float(v) for v in np.round(np.array([180.0, 216.0, 180.0]) / np.array(shape), 3))
    return PhantomSubject(f"Phantom_{index + 1:04d}", out, label, spacing)  # type: ignore[arg-type]


def _write_nifti(path: Path, data: np.ndarray, spacing: tuple[float, float, float]) -> None:
    import nibabel as nib

    # store LPS like BraTS: flip the first two axes and give the affine negative x, y steps
    lps = np.ascontiguousarray(data[::-1, ::-1, :])
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * (data.shape[0] - 1) / 2, spacing[1] * (data.shape[1] - 1) / 2,
                     -spacing[2] * (data.shape[2] - 1) / 2]
    img = nib.Nifti1Image(lps, affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)


def write_phantom_cohort(out: str | Path, subjects: int, seed: int = 0,
                         shape: tuple[int, int, int] = (128, 128, 96), overwrite: bool = False,
                         tumour_scale: float = 1.0) -> Path:
    """Write ``subjects`` phantoms as a BraTS-2021-style cohort folder at ``out`` (atomically).

    Raises:
        UsageError: ``subjects`` < 1, a bad shape or tumour scale, or ``out`` exists without ``overwrite``.
    """
    if subjects < 1:
        raise UsageError(f"--subjects must be at least 1, got {subjects}")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for i in range(subjects):
            ph = make_phantom(i, seed, shape, tumour_scale)
            folder = tmp / ph.name
            folder.mkdir()
            for suffix, vol in ph.sequences.items():
                _write_nifti(folder / f"{ph.name}_{suffix}.nii.gz", vol, ph.spacing)
            _write_nifti(folder / f"{ph.name}_seg.nii.gz", ph.label, ph.spacing)
    return Path(out)
