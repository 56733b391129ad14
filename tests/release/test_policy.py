"""Policy: the template is the defaults, unknown keys and bad values are refused, licence conflicts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from synthgate.errors import InputError, UsageError
from synthgate.release.licence import licence_conflicts, licence_terms
from synthgate.release.policy import Gating, ReleasePolicy, load_policy, policy_template, write_policy_template


def test_template_is_the_defaults(tmp_path: Path) -> None:
    p = write_policy_template(tmp_path / "policy.toml")
    assert load_policy(p) == ReleasePolicy()
    data = tomllib.loads(policy_template())
    assert data["memorization"]["max_fraction_flagged"] == 0.0
    assert data["memorization"]["remove_flagged"] is True
    assert data["utility"]["min_ratio"] == {"WT": 0.8, "TC": 0.8, "ET": 0.8}
    with pytest.raises(UsageError, match="already exists"):
        write_policy_template(p)


def test_values_are_read(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text(
        "[memorization]\nremoval_margin = 0.05\nmax_fraction_flagged_before_removal = 1\n"
        '[utility]\nmin_ratio = { ET = 0.5 }\n[access]\ngated = "off"\n'
    )
    pol = load_policy(p)
    assert pol.removal_margin == 0.05
    assert pol.max_fraction_flagged_before_removal == 1.0
    assert dict(pol.min_utility_ratio) == {"WT": 0.8, "TC": 0.8, "ET": 0.5}
    assert pol.gated is Gating.OFF


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[memorization]\nmax_fraction_flaged = 0.1\n", "unknown key"),
        ("[gate]\nx = 1\n", "unknown section"),
        ("[memorization]\nmax_fraction_flagged = 1.5\n", r"\[0, 1\]"),
        ("[memorization]\nremove_flagged = 1\n", "wrong type"),
        ("[memorization]\nmin_images = true\n", "wrong type"),
        ("[memorization]\nremoval_margin = -0.1\n", ">= 0"),
        ("[utility]\nmin_ratio = { XX = 0.5 }\n", "unknown region"),
        ("[utility]\nmin_ratio = { WT = 'high' }\n", "numbers"),
        ('[access]\ngated = "sometimes"\n', "gated"),
        ('[licence]\noutput = " "\n', "empty"),
    ],
)
def test_bad_policies_are_refused(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    with pytest.raises(UsageError, match=match):
        load_policy(p)


def test_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_policy(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[memorization\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_policy(tmp_path / "bad.toml")


def test_licence_terms() -> None:
    t = licence_terms("CC BY-NC-SA 3.0")
    assert (t.known, t.attribution, t.non_commercial, t.share_alike) == (True, True, True, True)
    assert licence_terms("cc0-1.0").attribution is False
    assert licence_terms("proprietary").known is False


@pytest.mark.parametrize(
    ("output", "training", "n", "word"),
    [
        ("cc-by-nc-sa-4.0", "cc-by-nc-sa-3.0", 0, ""),
        ("cc-by-4.0", "cc-by-nc-sa-3.0", 2, "non-commercial"),
        ("cc-by-nc-4.0", "cc-by-nc-sa-3.0", 1, "share-alike"),
        ("cc0-1.0", "cc-by-4.0", 1, "attribution"),
        ("mit", "cc-by-nc-4.0", 1, "commercial"),
        ("cc-by-4.0", "cc-by-4.0", 0, ""),
        ("cc-by-4.0", "tcia-restricted", 1, "not one synthgate knows"),
    ],
)
def test_licence_conflicts(output: str, training: str, n: int, word: str) -> None:
    found = licence_conflicts(output, training)
    assert len(found) == n
    assert not found or word in " ".join(found)


def test_template_round_trips_a_policy(tmp_path: Path) -> None:
    pol = ReleasePolicy(
        removal_margin=0.02,
        min_utility_ratio={"WT": 0.7, "TC": 0.6, "ET": 0.5},
        output_licence="cc-by-4.0",
        gated=Gating.AUTO,
        remove_flagged=False,
    )
    p = write_policy_template(tmp_path / "p.toml", policy=pol)
    assert load_policy(p) == pol


@pytest.mark.parametrize("name", ['a "quoted" name', "back\\slash", "line\nbreak", "ünïcode ✓", "x = 1 # not a comment"])
def test_template_quotes_any_dataset_name(tmp_path: Path, name: str) -> None:
    pol = ReleasePolicy(dataset_name=name, training_citation=f"cite {name}", training_dataset="BRATS 2013")
    p = write_policy_template(tmp_path / "p.toml", policy=pol)
    assert load_policy(p) == pol
    text = p.read_text(encoding="utf-8")
    assert "[source]" in text and "# How to cite the training data" in text
