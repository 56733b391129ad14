"""The run directory: what a training run writes and what sampling and ``--resume`` read.

```
RUN/config.json             the TrainConfig (+ synthgate_version)
RUN/data.json               channels, label channel and map, image size, training-set provenance
RUN/training_images.csv     id, subject of every image the generator was trained on
RUN/versions.json           synthgate, python, torch, monai, numpy; device
RUN/log.jsonl               one JSON line per logged step: step, losses, images/s, elapsed seconds
RUN/checkpoint.pt           latest state: weights, EMA weights, optimisers, step, position in the image stream
RUN/grids/step-NNNNNN.png   sample grids (EMA weights, fixed seeds)
RUN/monitor.json, .png      the memorization monitor's curve and kept checkpoint (with --monitor)
```
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgate import __version__, runtime
from synthgate.atomic import atomic_write_bytes, atomic_write_text
from synthgate.data.labels import LabelMap
from synthgate.errors import InputError
from synthgate.generators.codec import ChannelCodec, encoding_order
from synthgate.generators.config import TrainConfig

CONFIG = "config.json"
DATA = "data.json"
TRAIN_IMAGES = "training_images.csv"
VERSIONS = "versions.json"
LOG = "log.jsonl"
CHECKPOINT = "checkpoint.pt"
GRIDS = "grids"
MONITOR_JSON = "monitor.json"  # the memorization monitor's record (synthgate.generators.monitor)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` (stamped with the synthgate version) atomically."""
    atomic_write_text(path, json.dumps({"synthgate_version": __version__, **data}, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a run file; a missing or corrupt file is an input error naming it."""
    return runtime.read_json(path, f"is {path.parent} a generator run directory?")


@dataclass(frozen=True)
class DataSpec:
    """What a generator generates: the training set's channels, label channel and map, image size."""

    channels: tuple[str, ...]
    label_channel: int | None
    label_map: LabelMap | None
    height: int
    width: int
    source: dict[str, Any]

    @property
    def codec(self) -> ChannelCodec:
        if self.label_map is None or self.label_channel is None:
            return ChannelCodec(None)
        return ChannelCodec(self.label_channel, encoding_order(self.label_map))

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.channels), self.height, self.width

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "label_channel": self.label_channel,
            "label_map": None if self.label_map is None else self.label_map.to_json(),
            "height": self.height,
            "width": self.width,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSpec:
        lm = data.get("label_map")
        return cls(
            channels=tuple(data["channels"]),
            label_channel=data.get("label_channel"),
            label_map=None if lm is None else LabelMap.from_json(lm),
            height=int(data["height"]),
            width=int(data["width"]),
            source=dict(data.get("source", {})),
        )


def write_training_images(path: Path, ids: Sequence[str], subjects: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "subject"])
    w.writerows(zip(ids, subjects, strict=True))
    atomic_write_text(path, buf.getvalue())


def read_training_ids(path: Path) -> list[str]:
    """The ids listed in ``training_images.csv`` (empty when the file is missing)."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


def versions(device: str) -> dict[str, Any]:
    """Versions of what produced a run, and the device (with the GPU's name on CUDA)."""
    import torch

    info: dict[str, Any] = {**runtime.versions("torch", "monai", "numpy"), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a crash never leaves a half-written checkpoint)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device: str) -> dict[str, Any]:
    """Read a checkpoint onto ``device``.

    Raises:
        InputError: missing or unreadable checkpoint.
    """
    import torch

    if not path.is_file():
        raise InputError(f"{path} is missing; train the run first (or it has not reached a checkpoint yet)")
    try:
        state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise InputError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); retrain or restore it") from None
    return state


@dataclass(frozen=True)
class Run:
    """A run directory's configuration and data description."""

    path: Path
    config: TrainConfig
    data: DataSpec


def open_run(path: str | os.PathLike[str]) -> Run:
    """Read ``config.json`` and ``data.json`` of a run directory.

    Raises:
        InputError: not a run directory, or its files are corrupt.
    """
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p} is not a directory; give the --out folder of 'synthgate generators train'")
    return Run(
        path=p,
        config=TrainConfig.from_json(read_json(p / CONFIG)),
        data=DataSpec.from_json(read_json(p / DATA)),
    )


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to the loss log."""
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (a resumed run rewrites them)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def read_monitor(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``monitor.json`` (``None`` when it was trained without the memorization monitor)."""
    path = Path(run_dir) / MONITOR_JSON
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
