from __future__ import annotations

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet, check_compatible
from synthgate.data.store import StoreWriter, read_store, write_store
from synthgate.errors import InputError, UsageError
from tests.sets import make_set


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_store_round_trip(tmp_path, dtype):
    s = make_set(n=7)
    write_store(s, tmp_path / "st", dtype=dtype)
    r = read_store(tmp_path / "st")
    assert isinstance(r.images, np.memmap)
    tol = 0 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(np.asarray(r.images, np.float32), s.images, atol=tol)
    assert r.ids == s.ids and r.subjects == s.subjects and r.channels == s.channels
    assert r.label_channel == s.label_channel and r.label_map == s.label_map
    assert r.meta["synthgate_version"]


def test_store_refuses_existing_path_and_writes_nothing_on_failure(tmp_path):
    s = make_set()
    write_store(s, tmp_path / "st")
    with pytest.raises(UsageError, match="already exists"):
        write_store(s, tmp_path / "st")
    with pytest.raises(UsageError):
        write_store(s, tmp_path / "other", dtype="int8")
    assert not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["st"]


def test_iter_blocks_covers_the_set_in_bounded_blocks(tmp_path):
    s = make_set(n=11)
    write_store(s, tmp_path / "st")
    r = read_store(tmp_path / "st")
    blocks = list(r.iter_blocks(4))
    assert [len(b) for _, b in blocks] == [4, 4, 3]
    assert [start for start, _ in blocks] == [0, 4, 8]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), s.images)


def test_store_writer_streams_blocks(tmp_path):
    s = make_set(n=5)
    w = StoreWriter(tmp_path / "st", s.channels)
    w.append(s.images[:2], s.ids[:2], "s0", [3, 4], "real")
    w.append(s.images[2:], s.ids[2:], "s1", [5, 6, 7], "real", seeds=[9, 10, 11])
    assert w.close({"label_channel": 2, "label_map": None}, 16) == 5
    r = read_store(tmp_path / "st")
    np.testing.assert_array_equal(r.images, s.images)
    assert r.subjects == ("s0", "s0", "s1", "s1", "s1")
    assert list(r.slice_index) == [3, 4, 5, 6, 7]
    assert list(r.seeds) == [-1, -1, 9, 10, 11]


def test_truncated_store_is_an_input_error(tmp_path):
    write_store(make_set(n=4), tmp_path / "st")
    data = (tmp_path / "st" / "images.npy").read_bytes()
    (tmp_path / "st" / "images.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="images.npy"):
        read_store(tmp_path / "st")


def test_imageset_rejects_duplicates_and_bad_shapes():
    s = make_set(n=3)
    with pytest.raises(InputError, match="duplicate image id 'a'"):
        ImageSet(s.images, ("a", "b", "a"), s.subjects, s.channels)
    with pytest.raises(InputError, match="channel names"):
        ImageSet(s.images, s.ids, s.subjects, ("x",))
    with pytest.raises(InputError, match="N x C x H x W"):
        ImageSet(s.images[0], s.ids, s.subjects, s.channels)


def test_check_compatible_names_both_sets():
    a, b = make_set(channels=3), make_set(channels=4)
    with pytest.raises(InputError, match="train has channels .* but synthetic has"):
        check_compatible(a, b, "train", "synthetic")
    with pytest.raises(InputError, match="train has images of 16x16 but synthetic has 8x8"):
        check_compatible(make_set(), make_set(size=8), "train", "synthetic")
    check_compatible(a, make_set(channels=3, seed=5), "train", "synthetic")


def test_subset_and_select_subjects():
    s = make_set(n=6)
    sub = s.select_subjects(["imgs1"])
    assert sub.ids == ("img002", "img003")
    np.testing.assert_array_equal(sub.images, s.images[2:4])


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    write_store(make_set(), tmp_path / "st")
    mode = stat.S_IMODE(os.stat(tmp_path / "st").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask


def test_iter_blocks_yields_copies(tmp_path):
    write_store(make_set(n=4), tmp_path / "st")
    r = read_store(tmp_path / "st")
    _, block = next(r.iter_blocks(2))
    assert not np.shares_memory(block, r.images) and block.flags.writeable


def test_block_reader_matches_memory_map(tmp_path):
    store = read_store(write_store(make_set(n=24), tmp_path / "s", dtype="float16"))
    blocks = list(store.iter_blocks(5))
    assert [s for s, _ in blocks] == list(range(0, 24, 5))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), np.asarray(store.images, np.float32))
    np.testing.assert_array_equal(store.read_rows([7, 2, 7]), np.asarray(store.images[[7, 2, 7]], np.float32))
    assert blocks[0][1].dtype == np.float32
    # a slice of the memory map keeps the parent's file offset: the reader must not read from row 0
    part = ImageSet(images=store.images[3:9], ids=store.ids[3:9], subjects=store.subjects[3:9],
                    channels=store.channels, label_channel=store.label_channel)
    got = np.concatenate([b for _, b in part.iter_blocks(4)])
    np.testing.assert_array_equal(got, np.asarray(store.images[3:9], np.float32))
    np.testing.assert_array_equal(part.read_rows([0, 5]), np.asarray(store.images[[3, 8]], np.float32))
    # a view of a row range (a torchrun rank's share of the training set) reads the right rows from the file
    view = store.row_range(10, 22).row_range(2, 9)
    assert view.ids == store.ids[12:19] and view.subjects == store.subjects[12:19]
    got = np.concatenate([b for _, b in view.iter_blocks(3)])
    np.testing.assert_array_equal(got, np.asarray(store.images[12:19], np.float32))
