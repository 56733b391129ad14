"""Fault-matrix rows of the CLI conventions (issue 14 rows 13-14, issue 15 item 6).

Each row: the bad input, the exit code, a message naming the option or file, and nothing left at ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from synthgate.cli import app
from synthgate.cli.common import handle_errors
from synthgate.data.config import Normalisation, OnError
from synthgate.data.store import StoreDtype, write_store
from synthgate.errors import InputError
from tests.sets import make_set

runner = CliRunner()


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def nothing_at(out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(make_set(n=4), tmp_path / "store")


@pytest.mark.parametrize(
    ("args", "option", "values"),
    [
        (("data", "ingest", "COHORT", "--on-error", "bogus"), "--on-error", list(OnError)),
        (("data", "ingest", "COHORT", "--normalise", "zscroe"), "--normalise", list(Normalisation)),
        (("data", "convert", "COHORT", "--dtype", "float64"), "--dtype", list(StoreDtype)),
        (("data", "ingest", "COHORT", "--labels", "brats2099"), "--labels", ["auto", "brats2021"]),
        (("generators", "sample", "COHORT", "--n", "2", "--dtype", "int8"), "--dtype", list(StoreDtype)),
    ],
)
def test_closed_set_option_with_a_bad_value_exits_2_listing_the_values(
    tmp_path: Path, args: tuple[str, ...], option: str, values: list[str]
) -> None:
    out = tmp_path / "out"
    r = cli(*(str(tmp_path) if a == "COHORT" else a for a in args), "--out", out)
    assert r.exit_code == 2, r.output
    assert option in r.output and all(v in r.output for v in values)
    assert "Traceback" not in r.output and "unexpected" not in r.output
    assert nothing_at(out)


def test_audit_list_and_size_options_exit_2_naming_the_option(tmp_path: Path, store: Path) -> None:
    out = tmp_path / "audit"
    base = ("audit", "memorization", "--train", store, "--synthetic", store, "--out", out, "--device", "cpu")
    r = cli(*base, "--transforms", "hflip,twirl")
    assert r.exit_code == 2 and "--transforms" in r.output and "'twirl'" in r.output and "zoom" in r.output
    r = cli(*base, "--backend", "gpu")
    assert r.exit_code == 2 and "--backend" in r.output and "faiss" in r.output
    r = cli(*base, "--max-memory", "2 gigs")
    assert r.exit_code == 2 and "--max-memory" in r.output and "512M" in r.output
    assert nothing_at(out)


def test_a_path_with_markup_is_printed_verbatim_on_one_line(tmp_path: Path) -> None:
    cohort = tmp_path / "x[/b]"
    out = tmp_path / "o"
    r = cli("data", "ingest", cohort, "--out", out)
    assert r.exit_code == 5, r.output
    assert str(cohort) in r.output and len(r.output.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    assert nothing_at(out)


def test_bracketed_words_survive_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHGATE_DEBUG", raising=False)
    one = typer.Typer()

    @one.command()
    @handle_errors
    def fail() -> None:
        raise InputError("policy.toml: [memorisation] is not a section; did you mean [memorization]?")

    r = runner.invoke(one, [])
    assert r.exit_code == 5
    assert "[memorisation] is not a section; did you mean [memorization]?" in r.output


def test_flags_have_one_form_and_no_type_and_closed_sets_list_values() -> None:
    for args in (("data", "ingest"), ("data", "convert"), ("generators", "train"), ("audit", "memorization"),
                 ("audit", "utility"), ("release", "build"), ("demo",)):
        text = cli(*args, "--help").output
        assert "--overwrite" in text and "--no-overwrite" not in text, args
        assert "<bool>" not in text, args
    text = cli("data", "ingest", "--help").output
    for values in ("<raise|skip>", "<float32|float16>", "zscore", "brats2013", "<brain|tumour>"):
        assert values in text


def test_tab_separated_stdout_keeps_real_tabs_and_json_is_only_json(store: Path) -> None:
    r = cli("data", "info", store)
    assert r.exit_code == 0, r.output
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert rows[0] == ["path", str(store)] and ["images", "4"] in rows
    r = cli("data", "info", store, "--json")
    assert json.loads(r.stdout)["images"] == 4


def test_messages_off_a_terminal_are_not_wrapped_at_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    from synthgate.cli.release import render_checks
    from synthgate.release.checks import Check

    detail = "a note much longer than eighty columns " * 4
    check = Check(name="utility_reference", passed=True, value="1", limit="2", detail=detail)
    render_checks(SimpleNamespace(checks=(check,), warnings=()))  # type: ignore[arg-type]
    lines = capsys.readouterr().err.splitlines()
    assert any(detail.strip() in ln and "utility_reference" in ln for ln in lines)


def test_ingest_skips_print_the_path_verbatim(tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    np.save(d / "ok.npy", np.random.default_rng(0).random((2, 8, 8)).astype(np.float32))
    np.save(d / "[red]bad.npy", np.full((2, 8, 8), np.inf, np.float32))
    r = cli("data", "convert", d, "--out", tmp_path / "st", "--on-error", "skip")
    assert r.exit_code == 0, r.output
    assert "[red]bad.npy" in r.output
