"""Fixtures of the segmentation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from synthgate.data.imageset import ImageSet
from tests.segment.helpers import make_tumour_set


@pytest.fixture
def tumour_set() -> Callable[..., ImageSet]:
    return make_tumour_set


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared CPU, oversubscribed threads make these tiny runs many times slower.

    Module scope, so it is in place before the module-scoped fixtures that train, and restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
