"""Every package names its public API in ``__all__``, every name resolves, and importing a package is cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("synthgate.data", "synthgate.generators", "synthgate.audit", "synthgate.segment", "synthgate.release")


@pytest.mark.parametrize("name", PACKAGES)
def test_public_api_is_named_and_resolves(name):
    package = importlib.import_module(name)
    assert package.__doc__ and len(package.__doc__.split()) > 10  # says what it does, not just its name
    assert package.__all__
    for attr in package.__all__:
        assert getattr(package, attr) is not None, f"{name}.{attr}"
    with pytest.raises(AttributeError, match="no attribute"):
        package.no_such_name  # noqa: B018


def test_importing_the_packages_imports_neither_torch_nor_matplotlib():
    code = "import sys; import " + ", ".join(PACKAGES) + "; sys.exit(bool({'torch', 'matplotlib'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_missing_optional_library_says_how_to_install_it(monkeypatch):
    from synthgate.errors import SynthgateError
    from synthgate.runtime import optional_import

    monkeypatch.setitem(sys.modules, "bagit", None)  # as if not installed
    with pytest.raises(SynthgateError, match=r'bagit is not installed; pip install "synthgate\[release\]"'):
        optional_import("bagit")
