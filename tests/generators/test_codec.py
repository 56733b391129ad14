from __future__ import annotations

import numpy as np
import pytest

from synthgate.data.labels import BRATS2013, BRATS2021, BRATS2023
from synthgate.errors import InputError
from synthgate.generators.codec import ChannelCodec, encoding_order


def _codec(label_channel=-1):
    return ChannelCodec(label_channel, encoding_order(BRATS2021))


def test_encoding_order_puts_background_first_and_oedema_outermost():
    assert encoding_order(BRATS2021) == (0, 2, 1, 4)
    assert encoding_order(BRATS2023) == (0, 2, 1, 3)
    assert encoding_order(BRATS2013) == (0, 2, 1, 3, 4)


def test_encode_decode_round_trip(tiny_set):
    codec = _codec(tiny_set.label_channel)
    enc = codec.encode(tiny_set.images)
    assert enc.min() >= -1 and enc.max() <= 1
    got = np.unique(enc[:, -1])
    assert np.abs(got[:, None] - np.array([-1, 0, 0.5, 1])).min(1).max() < 1e-6
    lab = tiny_set.images[:, -1]
    np.testing.assert_array_equal(enc[:, -1][lab == 0], -1)  # background at -1
    np.testing.assert_array_equal(enc[:, -1][lab == 2], 0)  # oedema next
    np.testing.assert_allclose(codec.decode(enc), tiny_set.images, atol=1e-6)


def test_decode_snaps_to_nearest_valid_label_like_brute_force():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, size=(5, 2, 7, 7)).astype(np.float32)
    codec = ChannelCodec(1, encoding_order(BRATS2013))
    dec = codec.decode(x)
    brute = np.asarray(codec.label_values)[np.abs(x[:, 1, ..., None] - codec.levels).argmin(-1)]
    np.testing.assert_array_equal(dec[:, 1], brute)
    assert set(np.unique(dec[:, 1]).tolist()) == set(BRATS2013.values)
    np.testing.assert_allclose(dec[:, 0], np.clip((x[:, 0] + 1) / 2, 0, 1))


def test_encode_rejects_unknown_label_values(tiny_set):
    images = np.array(tiny_set.images)
    images[0, -1, 0, 0] = 3
    with pytest.raises(InputError, match="outside the label map"):
        _codec(tiny_set.label_channel).encode(images)


def test_no_label_channel_is_plain_rescaling():
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 4, 4)).astype(np.float32)
    codec = ChannelCodec(None)
    np.testing.assert_allclose(codec.encode(x), x * 2 - 1, atol=1e-7)
    np.testing.assert_allclose(codec.decode(codec.encode(x)), x, atol=1e-6)
