"""Option types the commands share, declared once: ``--device``, ``--out``, ``--overwrite``, ``--json``,
``--max-memory``, and every option with a closed set of values.

Closed sets are the library's own ``StrEnum`` s, so ``--help`` lists the values and a wrong value exits 2 naming
the option and the valid values (typer's choice check), before any work starts. Comma lists of closed values
(``--transforms``) and sizes (``--max-memory``) go through a parser that raises :class:`typer.BadParameter`,
which exits 2 the same way.

Importing this module must stay cheap: the enums come from torch-free modules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperOption

from synthgate.audit.backend import Backend
from synthgate.audit.transforms import ALL_TRANSFORMS as AUDIT_TRANSFORMS
from synthgate.audit.transforms import Transform
from synthgate.data.config import Normalisation, OnError, SliceSelection
from synthgate.data.labels import LabelConvention
from synthgate.data.store import StoreDtype
from synthgate.errors import UsageError

T = TypeVar("T")


class Device(StrEnum):
    """``--device`` choices; only the CLI resolves ``auto`` (:func:`synthgate.cli.common.resolve_device`)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Labels(StrEnum):
    """``--labels``: ``auto`` (detected from the file names) or one :class:`~synthgate.data.labels.LabelConvention`."""

    AUTO = "auto"
    BRATS2021 = LabelConvention.BRATS2021.value
    BRATS2023 = LabelConvention.BRATS2023.value
    BRATS2013 = LabelConvention.BRATS2013.value

    def convention(self) -> LabelConvention | None:
        """The convention, or ``None`` for ``auto``."""
        return None if self is Labels.AUTO else LabelConvention(self.value)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5G"`` or a byte count -> bytes.

    Raises:
        UsageError: not a size.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise UsageError(f"cannot read {text!r}; give bytes or a size like 512M or 2G")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


class Transforms(tuple[Transform, ...]):
    """The ``--transforms`` value: a comma list on the command line, a tuple of transforms in the program."""

    __slots__ = ()


    def __str__(self) -> str:
        return ",".join(self) or "none"


ALL_TRANSFORMS = Transforms(AUDIT_TRANSFORMS)


def parse_transforms(text: str) -> Transforms:
    """``"hflip,shift"`` -> the transforms; ``"none"`` -> no transform (pixel Pearson only).

    Raises:
        UsageError: a name that is not a :class:`~synthgate.audit.transforms.Transform`.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["none"]:
        return Transforms()
    bad = [n for n in names if n not in {str(t) for t in Transform}]
    if bad or not names:
        raise UsageError(
            f"{', '.join(map(repr, bad)) or 'nothing'} is not one of {', '.join(Transform)}; "
            "give a comma list of them, or 'none'"
        )
    return Transforms(dict.fromkeys(Transform(n) for n in names))


def _option_parser(parse: Callable[[str], T]) -> Callable[[Any], T]:
    """``parse`` as a typer parser: a :class:`UsageError` exits 2 naming the option; parsed defaults pass."""

    @functools.wraps(parse)
    def parser(value: Any) -> T:
        if not isinstance(value, str):  # the default, already parsed
            return value
        try:
            return parse(value)
        except UsageError as e:
            raise typer.BadParameter(str(e)) from None

    return parser


DeviceOpt = Annotated[
    Device, typer.Option("--device", help="Where to compute: auto = CUDA when available, else CPU.")
]
Out = Annotated[
    Path,
    typer.Option("--out", help="Where to write (described above); must not exist unless --overwrite."),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace what is at --out; it is kept if this command fails."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout, and nothing else there.")]
MaxMemory = Annotated[
    int,
    typer.Option(
        "--max-memory",
        parser=_option_parser(parse_size),
        metavar="<size>",
        help="Memory budget in bytes, or e.g. 512M, 2G.",
    ),
]
OnErrorOpt = Annotated[
    OnError, typer.Option("--on-error", help="raise: stop at the first invalid file; skip: skip it and list it.")
]
DtypeOpt = Annotated[StoreDtype, typer.Option("--dtype", help="Dtype of the store's images.")]
NormaliseOpt = Annotated[Normalisation, typer.Option("--normalise", help="Per-volume intensity normalisation.")]
SlicesOpt = Annotated[
    SliceSelection, typer.Option("--slices", help="brain: slices with enough brain; tumour: only those with tumour.")
]
LabelsOpt = Annotated[Labels, typer.Option("--labels", help="Label convention; auto: from the file names.")]
FolderChannels = Annotated[
    str | None,
    typer.Option(
        "--channels",
        metavar="<name,...>",
        help="Names of the channels of image-folder inputs, in file order (e.g. t1,t1c,t2,flair,label); without "
        "it a folder's unnamed channels take the reference set's names by position.",
    ),
]
BackendOpt = Annotated[
    Backend, typer.Option("--backend", help="Candidate search (results are the same; speed differs).")
]
TransformsOpt = Annotated[
    Transforms,
    typer.Option(
        "--transforms",
        parser=_option_parser(parse_transforms),
        metavar=f"<{','.join(Transform)}|none>",
        help="Geometric transforms searched, a comma list; none: pixel Pearson only.",
    ),
]
SubjectsOpt = Annotated[
    Path | None,
    typer.Option(
        "--subjects",
        metavar="<file.csv>",
        help="CSV with columns id, subject: the subject of each image of the real image-folder inputs "
        "(without it, or --subject-pattern, each image of a folder counts as its own subject).",
    ),
]
SubjectPatternOpt = Annotated[
    str | None,
    typer.Option(
        "--subject-pattern",
        metavar="<regex>",
        help="Regular expression with a named group 'subject', searched in each image id of the real "
        "image-folder inputs, e.g. '^(?P<subject>[^_]+)_'.",
    ),
]


def _flag_type_hidden(self: TyperOption, ctx: Any) -> str | None:
    """Flags take no value, so help shows no ``<bool>`` after them."""
    if self.is_flag:
        return None
    return _typed_display(self, ctx)


if hasattr(TyperOption, "display_type_rich"):  # typer >= 0.20 shows a type after every option
    _typed_display = TyperOption.display_type_rich
    TyperOption.display_type_rich = _flag_type_hidden  # type: ignore[method-assign]

__all__ = [
    "BackendOpt",
    "Device",
    "DeviceOpt",
    "DtypeOpt",
    "Json",
    "Labels",
    "LabelsOpt",
    "MaxMemory",
    "NormaliseOpt",
    "OnErrorOpt",
    "Out",
    "Overwrite",
    "SlicesOpt",
    "SubjectPatternOpt",
    "SubjectsOpt",
    "TransformsOpt",
    "parse_size",
    "parse_transforms",
]
