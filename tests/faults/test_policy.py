"""Row 11: the policy refuses non-finite numbers (NaN passed every comparison and switched rules off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import cli


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[memorization]\nremoval_margin = nan\n", "removal_margin"),
        ("[utility]\nmin_ratio = { WT = nan }\n", "min_utility_ratio.WT"),
        ("[utility]\nmin_reference_dice = inf\n", "min_reference_dice"),
        ("[memorization]\nmax_fraction_flagged = nan\n", "max_fraction_flagged"),
    ],
)
def test_row11_policy_with_nan_or_inf_is_refused(text: str, key: str, tmp_path: Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text(text)
    r = cli("release", "policy", "--check", pol)
    assert r.exit_code == 2, r.output
    assert str(pol) in r.output and key in r.output and "finite" in r.output
    assert "{" not in r.output  # no JSON was printed
