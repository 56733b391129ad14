from __future__ import annotations

import numpy as np

from synthgate.data.phantom import ENHANCING, NECROSIS, OEDEMA, make_phantom


def test_phantom_is_deterministic_and_varies_by_subject():
    a, b = make_phantom(0, seed=1, shape=(32, 32, 24)), make_phantom(0, seed=1, shape=(32, 32, 24))
    for k in a.sequences:
        np.testing.assert_array_equal(a.sequences[k], b.sequences[k])
    c = make_phantom(1, seed=1, shape=(32, 32, 24))
    assert not np.array_equal(a.label, c.label)


def test_phantom_contrasts_are_mri_like():
    p = make_phantom(2, seed=0, shape=(48, 48, 40))
    seqs = {k: v.astype(float) for k, v in p.sequences.items()}
    lab = p.label
    assert {NECROSIS, OEDEMA, ENHANCING} <= set(np.unique(lab).tolist())

    def mean(seq, mask):
        return seqs[seq][mask].mean()

    brain = (seqs["t1"] > 0) & (lab == 0)
    oed, enh, nec = lab == OEDEMA, lab == ENHANCING, lab == NECROSIS
    assert mean("flair", oed) > mean("flair", brain) * 1.3  # oedema bright in FLAIR
    assert mean("t2", oed) > mean("t2", brain)  # and in T2
    assert mean("t1ce", enh) > mean("t1", enh) * 1.4  # enhancing rim bright in T1c only
    assert mean("t1ce", nec) < mean("t1ce", brain) * 0.5  # necrosis dark
