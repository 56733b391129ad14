from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from synthgate.atomic import Terminated
from synthgate.cli.common import handle_errors, resolve_device
from synthgate.errors import GateRefused, InputError, IntegrityError, UsageError

runner = CliRunner()


def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @handle_errors
    def boom() -> None:
        raise exc

    return app


@pytest.mark.parametrize(
    ("exc", "code"),
    [(UsageError("bad --k"), 2), (GateRefused("refused"), 3), (IntegrityError("bad hash"), 4),
     (InputError("x.nii.gz: corrupt"), 5), (RuntimeError("oops"), 1)],
)
def test_errors_become_one_line_and_their_exit_code(monkeypatch, exc, code):
    monkeypatch.delenv("SYNTHGATE_DEBUG", raising=False)
    r = runner.invoke(_app(exc), [])
    assert r.exit_code == code
    assert str(exc) in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("stop", "code", "word"), [(KeyboardInterrupt(), 130, "interrupted"),
                                                    (Terminated(15), 143, "terminated")])
def test_an_interruption_that_python_wrapped_still_exits_as_one(monkeypatch, stop, code, word):
    """A signal during a class's creation reaches us as RuntimeError("Error calling __set_name__ ...") caused by
    it (seen once in CI: SIGTERM while matplotlib was imported, exit 1 instead of 143)."""
    monkeypatch.delenv("SYNTHGATE_DEBUG", raising=False)
    wrapped = RuntimeError("Error calling __set_name__ on '_axis_method_wrapper' instance 'get_xgridlines'")
    wrapped.__cause__ = stop
    r = runner.invoke(_app(wrapped), [])
    assert r.exit_code == code and word in r.output and "unexpected" not in r.output
    unrelated = RuntimeError("oops")
    unrelated.__context__ = ValueError("inner")
    assert runner.invoke(_app(unrelated), []).exit_code == 1


def test_debug_shows_the_exception(monkeypatch):
    monkeypatch.setenv("SYNTHGATE_DEBUG", "1")
    r = runner.invoke(_app(InputError("x")), [])
    assert isinstance(r.exception, InputError)


def test_resolve_device():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda"):
            resolve_device("cuda")
