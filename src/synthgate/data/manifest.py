"""Content hashes that bind an audit to the exact images it measured.

Ids alone never bind: every sampled store names its images ``syn-000000``... , so an audit of one sample would
gate any other. An image's digest is the SHA-256 of its shape and its pixels as float32, little-endian, C order
(so a float16 store and its float32 copy agree). A set's manifest is its ordered ``(id, digest)`` list, and the
set digest is the SHA-256 over that list (shape and channel count included through every image digest).

Audits record manifests; ``release build`` recomputes them from the sets it is given and names the first image
that differs. :func:`check_disjoint` uses the same digests to refuse a holdout that overlaps the training set.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.errors import InputError

BLOCK = 256  # images per block when a whole set is digested

_cache: weakref.WeakKeyDictionary[ImageSet, Manifest] = weakref.WeakKeyDictionary()


def block_digests(block: np.ndarray) -> list[str]:
    """Hex SHA-256 of each image of an ``n x C x H x W`` block (see the module docstring)."""
    arr = np.ascontiguousarray(block, dtype="<f4")
    if arr.ndim != 4:
        raise InputError(f"expected an n x C x H x W block, got shape {arr.shape}")
    head = repr(tuple(int(x) for x in arr.shape[1:])).encode()
    out = []
    for img in arr:  # hashed in place: no copy, and hashlib releases the GIL while it reads the pixels
        h = hashlib.sha256(head)
        h.update(img.data)
        out.append(h.hexdigest())
    return out


def set_digest(ids: Sequence[str], digests: Sequence[str]) -> str:
    """SHA-256 over the ordered ``(id, digest)`` pairs."""
    h = hashlib.sha256()
    for i, d in zip(ids, digests, strict=True):
        h.update(i.encode("utf-8") + b"\0" + d.encode("ascii") + b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A set's ordered ids and per-image digests."""

    ids: tuple[str, ...]
    digests: tuple[str, ...]

    @property
    def digest(self) -> str:
        return set_digest(self.ids, self.digests)

    def to_json(self, images: bool = True) -> dict[str, Any]:
        """``{n, digest, images: [[id, digest], ...]}``; without ``images`` no id is written (public files)."""
        out: dict[str, Any] = {"n": len(self.ids), "digest": self.digest}
        if images:
            out["images"] = [[i, d] for i, d in zip(self.ids, self.digests, strict=True)]
        return out


def set_manifest(s: ImageSet, block_size: int = BLOCK) -> Manifest:
    """The manifest of ``s``, read block by block (bounded memory); computed once per set object."""
    hit = _cache.get(s)
    if hit is not None:
        return hit
    digests: list[str] = []
    for _, block in s.iter_blocks(block_size):
        digests.extend(block_digests(block))
    m = Manifest(tuple(s.ids), tuple(digests))
    _cache[s] = m
    return m


def check_manifest(recorded: Mapping[str, Any] | None, actual: ImageSet, option: str, where: str) -> None:
    """Raise :class:`InputError` unless ``actual`` holds exactly the images ``recorded`` describes.

    Args:
        recorded: a :meth:`Manifest.to_json` record (``images`` optional).
        actual: the set given now.
        option: the option that named ``actual`` (``--synthetic``...), for the message.
        where: the file the record came from, for the message.
    """
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("digest"), str):
        raise InputError(f"{where} records no content hashes for {option}; rerun the audit with this synthgate")
    m = set_manifest(actual)
    if m.digest == recorded["digest"]:
        return
    rows = recorded.get("images")
    first = None
    if isinstance(rows, list):
        for k, (i, d) in enumerate(zip(m.ids, m.digests, strict=False)):
            if k >= len(rows) or list(rows[k]) != [i, d]:
                first = f"image {k} ({i!r}) differs from the audited one"
                break
        else:
            first = f"{len(m.ids)} images given, {len(rows)} audited"
    elif recorded.get("n") != len(m.ids):
        first = f"{len(m.ids)} images given, {recorded.get('n')} audited"
    else:
        first = "the images differ"
    raise InputError(
        f"{option} is not the set audited in {where}: {first}; audit this exact set again (ids alone never bind)"
    )


def _first_shared(a: Iterable[str], b: Iterable[str]) -> tuple[int, str | None]:
    shared = set(a) & set(b)
    return len(shared), (min(shared) if shared else None)


def check_disjoint(train: ImageSet, holdout: ImageSet, train_name: str = "--train",
                   holdout_name: str = "--holdout") -> None:
    """Refuse a holdout that shares an image id, a subject or an image's content with the training set.

    A holdout that overlaps the training set calibrates the threshold on copies: it comes out near 1 and no
    copy is ever flagged, silently turning the audit off.

    Raises:
        InputError: naming the first overlap (exit 5).
    """
    check_disjoint_names(train, holdout, train_name, holdout_name)
    check_disjoint_content(train, holdout, train_name, holdout_name)


def _fix(train_name: str, holdout_name: str) -> str:
    return f"{holdout_name} must hold subjects unseen in {train_name} (ingest with --split)"


def check_disjoint_names(train: ImageSet, holdout: ImageSet, train_name: str = "--train",
                         holdout_name: str = "--holdout") -> None:
    """The id and subject half of :func:`check_disjoint` (reads no image)."""
    for what, a, b in (("image id", train.ids, holdout.ids), ("subject", train.subjects, holdout.subjects)):
        n, first = _first_shared(a, b)
        if n:
            raise InputError(f"{holdout_name} overlaps {train_name}: {n} {what}(s) in both, e.g. {first!r}; "
                             f"{_fix(train_name, holdout_name)}")


def check_disjoint_content(train: ImageSet, holdout: ImageSet, train_name: str = "--train",
                           holdout_name: str = "--holdout") -> None:
    """The content half of :func:`check_disjoint`; blank images are equal by chance, not copies."""
    seen = set(set_manifest(train).digests)
    hm = set_manifest(holdout)
    rows = [k for k, d in enumerate(hm.digests) if d in seen]
    if rows:  # the audit cannot match blank images anyway
        ch = list(holdout.image_channels) or list(range(holdout.shape[0]))
        varied = []
        for _, block in holdout.iter_blocks(BLOCK):
            flat = block[:, ch].reshape(len(block), len(ch), -1)
            varied.extend(np.ptp(flat, axis=2).min(axis=1) > 0)
        rows = [k for k in rows if varied[k]]
    copies = [hm.ids[k] for k in rows]
    if copies:
        raise InputError(
            f"{holdout_name} overlaps {train_name}: {len(copies)} image(s) with the same content as a training "
            f"image, e.g. {copies[0]!r}; {_fix(train_name, holdout_name)}"
        )


def remember_manifest(s: ImageSet, digests: Sequence[str]) -> None:
    """Record digests of ``s`` computed during another pass over it (the audit's single read of the training
    set), so that no later step reads it again for them."""
    _cache[s] = Manifest(tuple(s.ids), tuple(digests))


SCHEME = "sha256 per image over its shape and float32 little-endian C-order pixels; set: sha256 over (id, digest)"


def binding_json(sets: Mapping[str, ImageSet | None], public: Iterable[str] = ()) -> dict[str, Any]:
    """The ``binding`` record of an audit: a manifest per set given (``None`` sets are left out).

    Sets named in ``public`` are recorded by count and digest only, so no real id is written.
    """
    hidden = set(public)
    out: dict[str, Any] = {"scheme": SCHEME}
    for name, s in sets.items():
        if s is not None:
            out[name] = set_manifest(s).to_json(images=name not in hidden)
            if name not in hidden:  # private records: the release's privacy guard reads them
                out[name]["subjects"] = list(s.subject_ids)
    return out


def check_binding(binding: Any, sets: Mapping[str, tuple[str, ImageSet | None]], where: str) -> None:
    """Check every given set against the audit's ``binding`` record (see :func:`check_manifest`).

    Args:
        binding: the ``binding`` record read from the audit's JSON (``None`` when the audit has none).
        sets: ``{record key: (option name, set or None)}``; ``None`` sets are not checked.
        where: the audit file, for messages.
    """
    if not isinstance(binding, Mapping):
        raise InputError(
            f"{where} has no content binding (written by an older synthgate): audit the set again, so that the "
            "gate can check it holds exactly the audited images"
        )
    for key, (option, s) in sets.items():
        if s is not None:
            check_manifest(binding.get(key), s, option, where)
