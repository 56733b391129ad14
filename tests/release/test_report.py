"""The public release report: waived vs pass vs not measured, the test explained, utility once, labels."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from synthgate.release.explain import check_meaning, mann_whitney_sentence
from synthgate.release.gate import evaluate_gate
from synthgate.release.inputs import read_audit, read_utility
from synthgate.release.policy import ReleasePolicy
from synthgate.release.report import report_html, report_json, score_figure

from .conftest import make_synthetic, make_train, write_audit, write_utility


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    train = make_train()
    syn = make_synthetic(train)
    root = tmp_path_factory.mktemp("report")
    return write_audit(root / "audit", syn, train, method="train-subject-disjoint",
                       summary_overrides={"test": {"name": "mann-whitney-u", "statistic": 5.0, "p_value": 0.006,
                                                   "alternative": "greater", "interpretation": "evidence"}}), syn.ids


def _report(audit_dir: tuple[Path, tuple[str, ...]], policy: ReleasePolicy, utility: Path | None = None
            ) -> tuple[dict, str]:
    path, ids = audit_dir
    audit = read_audit(path)
    util = None if utility is None else read_utility(utility)
    data = report_json(evaluate_gate(ids, audit, util, policy), audit, util, policy)
    return data, report_html(data, audit, util, set())


def _row_note(page: str, name: str) -> str:
    m = re.search(rf"<td><code>{name}</code></td>(?:<td>.*?</td>){{2}}<td>(.*?)</td></tr>", page)
    assert m, name
    return m.group(1)


def _row(page: str, name: str) -> str:
    m = re.search(rf'<tr class="(\w+)"><td>([^<]*)</td><td><code>{name}</code></td><td>(.*?)</td>', page)
    assert m, name
    return f"{m.group(1)}|{m.group(2)}|{m.group(3)}"


def test_waived_checks_are_not_passes(audit_dir: tuple[Path, tuple[str, ...]]) -> None:
    policy = ReleasePolicy(require_utility=False, require_holdout_calibration=False)
    data, page = _report(audit_dir, policy)
    status = {c["name"]: c["status"] for c in data["checks"]}
    assert status["utility"] == "waived" and status["holdout_calibration"] == "waived"
    assert status["images_released"] == "pass"
    assert _row(page, "utility") == "waived|– waived|<em>not measured</em>"
    assert _row(page, "holdout_calibration").startswith("waived|– waived|")
    assert _row(page, "images_released").startswith("pass|✔ pass|")
    assert "2 check(s) were waived by the policy" in page


def test_not_measured_ratio_is_waived_or_failed(audit_dir: tuple[Path, tuple[str, ...]], tmp_path: Path) -> None:
    util = write_utility(tmp_path / "u", ratio={"WT": 0.9, "TC": 0.9, "ET": None})
    data, _ = _report(audit_dir, ReleasePolicy(require_utility=False, require_holdout_calibration=False), util)
    assert {c["name"]: c["status"] for c in data["checks"]}["utility_ratio_ET"] == "waived"
    data, _ = _report(audit_dir, ReleasePolicy(require_holdout_calibration=False), util)
    assert {c["name"]: c["status"] for c in data["checks"]}["utility_ratio_ET"] == "fail"


def test_every_check_is_explained(audit_dir: tuple[Path, tuple[str, ...]], tmp_path: Path) -> None:
    util = write_utility(tmp_path / "u")
    data, page = _report(audit_dir, ReleasePolicy(refuse_on_licence_conflict=True), util)
    names = [c["name"] for c in data["checks"]]
    assert {"licence", "utility_ratio_TC", "utility_reference_ET", "subjects_leaked"} <= set(names)
    for name in names:
        assert check_meaning(name), name
        assert html.escape(check_meaning(name)) in _row_note(page, name)


def test_mann_whitney_is_put_against_the_decision() -> None:
    t = {"p_value": 0.006}
    text = mann_whitney_sentence(t, "release", 0.9712, 3, 45)
    assert "p = 0.006 < 0.05" in text and "not a rule of the gate" in text and "0.9712" in text
    assert "all 45 released images score below it" in text
    assert "no closer" in mann_whitney_sentence({"p_value": 0.4}, "release", 0.9, 0, 10)
    assert "failed checks" in mann_whitney_sentence(t, "refuse", 0.9, 3, 0)
    assert "not run" in mann_whitney_sentence({"p_value": None}, "release", 0.9, 0, 1)


def test_utility_shown_once_with_its_plot(audit_dir: tuple[Path, tuple[str, ...]], tmp_path: Path) -> None:
    from PIL import Image

    util = write_utility(tmp_path / "u", fragment="<div><h2>Utility here</h2><table><tr><td>WT</td></tr></table></div>")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(util / "utility.png")
    _, page = _report(audit_dir, ReleasePolicy(), util)
    section = page.split('<section id="utility">')[1].split("</section>\n")[0]
    assert section.count("<table") == 1 and section.count('alt="Dice per region') == 1
    assert section.count("<h2>") == 1
    # without a fragment the table comes from utility.json, still once
    util2 = write_utility(tmp_path / "u2")
    _, page = _report(audit_dir, ReleasePolicy(), util2)
    section = page.split('<section id="utility">')[1].split("</section>\n")[0]
    assert section.count("<table") == 1 and "whole tumour" in section and "<img" not in section


def test_licence_is_a_sentence(audit_dir: tuple[Path, tuple[str, ...]]) -> None:
    _, page = _report(audit_dir, ReleasePolicy(output_licence="cc-by-4.0"))
    section = page.split("<h2>Licence</h2>")[1]
    assert "The released images are licensed under cc-by-4.0" in section and "cc-by-nc-sa-3.0" in section
    assert "possible conflict" in section and "<li>" in section
    _, page = _report(audit_dir, ReleasePolicy())
    assert "no conflict was found" in page and "<li>none</li>" not in page


def test_holdout_quantile_lines_are_labelled(audit_dir: tuple[Path, tuple[str, ...]]) -> None:
    import matplotlib.pyplot as plt

    fig = score_figure(read_audit(audit_dir[0]))
    labels = sorted(t.get_text().strip() for t in fig.axes[0].texts)
    plt.close(fig)
    assert labels == ["holdout median", "holdout q0.99"]


def test_cli_table_shows_waived(audit_dir: tuple[Path, tuple[str, ...]], capsys: pytest.CaptureFixture[str]) -> None:
    from synthgate.cli.release import render_checks

    path, ids = audit_dir
    decision = evaluate_gate(ids, read_audit(path), None, ReleasePolicy(require_utility=False,
                                                                        require_holdout_calibration=False))
    render_checks(decision)
    lines = capsys.readouterr().err.splitlines()
    assert any("waived" in ln and "utility" in ln for ln in lines)
    assert not any("pass" in ln and " utility " in ln for ln in lines)
