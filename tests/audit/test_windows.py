from __future__ import annotations

import numpy as np
import pytest
import torch

import synthgate.audit.windows as windows_mod
from synthgate.audit.backend import Backend
from synthgate.audit.candidates import descriptor_images
from synthgate.audit.index import IndexSettings, build_feature_cache
from synthgate.audit.match import MatchSettings, image_queries, score_queries
from synthgate.audit.scores import MIN_WINDOW_BRAIN, brain_mask, high_pass
from synthgate.audit.windows import window_candidates, window_descriptors, window_layout

from .conftest import blob_images, make_set
from .test_align import CH, feats


def test_window_products_are_channel_mean_pearson_of_the_high_pass_windows() -> None:
    pooled = descriptor_images(feats(blob_images(3, size=64, seed=41)))  # 2 x 32 x 32 each
    d = window_descriptors(pooled)
    assert d.shape == (9, 3, 2 * 16 * 16) and window_layout((2, 64, 64)) == (9, 2 * 16 * 16)
    hp, brain = high_pass(pooled).numpy(), brain_mask(pooled).numpy()[:, 0]
    for w, (y, x) in enumerate((y, x) for y in (0, 8, 16) for x in (0, 8, 16)):
        win = np.s_[..., y : y + 16, x : x + 16]
        for a, b in ((0, 1), (0, 2), (1, 1)):
            got = float(d[w, a] @ d[w, b])
            if min(brain[a][win].mean(), brain[b][win].mean()) < MIN_WINDOW_BRAIN:
                assert got == 0.0
                continue
            want = np.mean([np.corrcoef(hp[a, c][win].ravel(), hp[b, c][win].ravel())[0, 1] for c in range(2)])
            assert got == pytest.approx(want, abs=1e-5)
    assert (d[:, 2] @ d[:, 2].T).diagonal().max() <= 1 + 1e-5


def test_mirrored_descriptors_are_those_of_the_mirrored_image() -> None:
    f = feats(blob_images(2, size=48, seed=42))  # 48 px: adaptive pooling to 32 with uneven bins
    via_flag = window_descriptors(descriptor_images(f), mirrored=True)
    direct = window_descriptors(descriptor_images(torch.flip(f, dims=(-1,))))
    torch.testing.assert_close(via_flag, direct, atol=1e-6, rtol=0)


def _reference(views: list[torch.Tensor], db: torch.Tensor, bad: np.ndarray, k: int) -> np.ndarray:
    """Brute force: every window's best entry over every row (and its mirror, the second view), then distinct
    entries by score."""
    n, total = views[0].shape[1], db.shape[1]
    out = np.full((n, k), -1)
    for i in range(n):
        proposals = []
        for w in range(len(db)):
            if all(float(v[w, i].abs().max()) == 0 for v in views):
                continue  # no brain in this window: it proposes nothing
            best, who = -np.inf, -1
            for j in range(total):
                for mirrored, v in enumerate(views):
                    s = float(v[w, i] @ db[w, j])
                    if not bad[i, j] and s > best:
                        best, who = s, len(views) * j + mirrored
            proposals.append((best, w, who))
        kept = list(dict.fromkeys(e for s, _w, e in sorted(proposals, key=lambda t: (-t[0], t[1]))
                                  if np.isfinite(s)))[:k]
        out[i, : len(kept)] = kept
    return out


def test_window_candidates_equal_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(43)
    q, qm, db = (torch.from_numpy(rng.normal(size=(9, n, 12)).astype(np.float32)) for n in (5, 5, 23))
    q[:8, 1], qm[:8, 1] = 0, 0  # query 1 has brain in its last window only: one proposal
    q[2, 3] = 0  # query 3's window 2 is empty, its mirror's is not: it still proposes
    valid = np.ones(23, bool)
    valid[[3, 17]] = False
    groups, query_groups = np.arange(23) % 4, np.array([0, 1, 2, 3, 0])
    monkeypatch.setattr(windows_mod, "ALIGN_WORK_BYTES", 4 * 5 * 2 * 6)  # passes of 6 training rows
    got = window_candidates(q, qm, db, valid, 3, 2, groups, query_groups)
    bad = ~valid[None, :] | (query_groups[:, None] == groups[None, :])
    np.testing.assert_array_equal(got, _reference([q, qm], db, bad, 3))
    assert got[1, 0] >= 0 and (got[1, 1:] == -1).all()
    plain = window_candidates(q, None, db, valid, 2, 1)  # without mirrors: entries are rows
    np.testing.assert_array_equal(plain, _reference([q], db, np.repeat(~valid[None, :], 5, axis=0), 2))


def test_the_window_search_finds_a_patch_copy_that_pixel_candidates_miss(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = blob_images(12, size=64, seed=44)
    unseen = x[11]
    # noisy near-copies of an unseen slice (another subject) lead the whole-image ranking; a quarter-area patch of
    # training image 2 (top centre) pasted into that slice is the copy
    decoys = np.stack([unseen + 0.2 * np.random.default_rng(i).normal(size=unseen.shape).astype(np.float32)
                       for i in range(3)])
    decoys[:, 2] = unseen[2]
    train = make_set(np.concatenate([x[:8], decoys]), "tr")
    query = unseen.copy()
    query[:, :32, 16:48] = x[2][:, :32, 16:48]
    synthetic = make_set(query[None], "syn")
    groups = np.array([int(s[3:]) for s in train.subjects])
    results = {}
    with build_feature_cache(train, CH, groups, IndexSettings(4, 1 << 30, descriptors=False, windows=True)) as cache:
        assert cache.windows.shape[:2] == (9, len(train))
        for on in (False, True):
            settings = MatchSettings(4, Backend.TORCH, "cpu", True, (), 0, 8, 8, window_candidates=on)
            results[on] = score_queries(image_queries(synthetic, CH, 8, "--synthetic"), 1, cache, settings)
    assert set(results[False].topk_rows[0, :2]) <= {8, 9, 10}  # the pixel candidates are the decoys
    assert results[False].partial_row[0] != 2
    assert results[True].partial_row[0] == 2 and results[True].partial[0] > 0.95
    assert results[True].partial[0] > results[False].partial[0] + 0.1


@pytest.mark.parametrize("shape", [(3, 2, 128, 128), (2, 2, 256, 64), (2, 2, 48, 48), (2, 2, 24, 24)])
def test_descriptor_images_are_the_area_means_of_adaptive_pooling(shape: tuple[int, int, int, int]) -> None:
    x = torch.from_numpy(np.random.default_rng(45).normal(size=shape).astype(np.float32))
    side = (min(shape[2], 32), min(shape[3], 32))
    want = torch.nn.functional.adaptive_avg_pool2d(x.reshape(-1, 1, *shape[2:]), side).reshape(*shape[:2], *side)
    torch.testing.assert_close(descriptor_images(x), want, atol=1e-6, rtol=0)  # block sums where the side divides
