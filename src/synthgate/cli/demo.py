"""``synthgate demo``: the whole flow on the built-in phantom cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate.cli.common import handle_errors, out, print_json, say
from synthgate.cli.options import Device, DeviceOpt, Json, Out, Overwrite
from synthgate.errors import IntegrityError
from synthgate.release.demo import Scenario


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        out_dir: Out = Path("demo-output"),
        scenario: Annotated[
            Scenario,
            typer.Option("--scenario", help="default: a tiny generator; memorizing: one overfitted on a few images."),
        ] = Scenario.DEFAULT,
        device: DeviceOpt = Device.AUTO,
        generator_steps: Annotated[
            int | None,
            typer.Option("--generator-steps", min=1, help="Generator training steps (default 2000; memorizing 3000)."),
        ] = None,
        generator_seconds: Annotated[
            float | None,
            typer.Option("--generator-seconds", min=1, help="Generator training time budget (default 420 s)."),
        ] = None,
        overwrite: Overwrite = False,
        as_json: Json = False,
    ) -> None:
        """Phantom cohort -> ingest -> generator -> sample -> audits -> release gate -> verify into --out; print
        the decision.

        Exits 0 when the flow completes, whether the gate releases or refuses (the decision is printed and in
        demo.json); 4 when the released bundle fails verification.
        """
        from synthgate.cli.common import resolve_device
        from synthgate.release.demo import DemoConfig, run_demo

        dev = resolve_device(device)
        config = DemoConfig(scenario=scenario, generator_steps=generator_steps, generator_seconds=generator_seconds)
        result = run_demo(
            out_dir,
            config,
            device=dev,
            overwrite=overwrite,
            log=say,
        )
        if as_json:
            print_json(result.to_json())
        else:
            _render(result)
        if result.verified is False:
            raise IntegrityError(f"the demo bundle {result.paths.get('bundle')} failed verification")


def _render(result: object) -> None:
    from synthgate.release.demo import DemoResult

    assert isinstance(result, DemoResult)
    facts = result.facts
    gen = facts.get("generator")
    if gen:
        say(
            f"generator: {gen['kind']} ({gen['preset']}), {gen['steps']}/{gen['planned_steps']} steps "
            f"(stopped by {gen['stopped_by']}), trained on {gen['train_images']} images"
        )
    if "audit" in facts:
        a = facts["audit"]
        say(
            f"audit: {a['flagged']}/{a['audited']} flagged at threshold {a['threshold']}, "
            f"{a['leaked_subjects']} training subject(s) leaked"
        )
        if result.scenario == "memorizing" and a["flagged"] == 0 and gen:
            say(
                f"the generator copied no training image within its budget ({gen['steps']} of "
                f"{gen['planned_steps']} steps); give it more --generator-seconds to see the memorization checks fail",
                "note:",
                "yellow",
            )
    if "utility_ratio" in facts:
        say(f"utility (synthetic/real Dice): {facts['utility_ratio']}")
    if result.missing:
        say(", ".join(result.missing), "missing stages (not installed):", "yellow")
    if result.decision == "release":
        status = "verified" if result.verified else "FAILED verification"
        say(f"{facts.get('released')} images, bundle {result.paths['bundle']} ({status})", "RELEASE:", "bold green",
            to=out)
        say(f"public report: {result.paths['public_report']}", to=out)
    elif result.decision == "refuse":
        say("by the release gate:", "REFUSED", "bold red", to=out)
        for r in result.reasons:
            say(f"  - {r}", to=out)
    else:
        say("the flow stopped at a missing stage; no decision", "INCOMPLETE:", "yellow", to=out)
    if "audit" in result.paths:
        say(f"audit report (PRIVATE, shows training images): {result.paths['audit'] / 'report.html'}", to=out)
    say(f"summary: {result.out / 'demo.json'}", to=out)
