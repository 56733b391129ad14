"""``synthgate demo``: the whole flow on the built-in phantom cohort; exits 0 on a release, 3 on a refusal, 4 when
the released bundle fails verification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate.cli.common import handle_errors, out, print_json, resolve_device, say
from synthgate.cli.options import Device, DeviceOpt, Json, Out, Overwrite
from synthgate.demo import DemoResult, Scenario


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        out_dir: Out = Path("demo-output"),
        scenario: Annotated[
            Scenario,
            typer.Option("--scenario", help="default: a generator that should release; memorizing: one overfitted "
                         "on 4 images, which the gate should refuse."),
        ] = Scenario.DEFAULT,
        device: DeviceOpt = Device.AUTO,
        generator_steps: Annotated[
            int | None,
            typer.Option("--generator-steps", min=1, help="Generator training steps (default: the scenario's)."),
        ] = None,
        generator_seconds: Annotated[
            float | None,
            typer.Option("--generator-seconds", min=1, help="Cap on generator training time (default: none)."),
        ] = None,
        overwrite: Overwrite = False,
        as_json: Json = False,
    ) -> None:
        """Phantom cohort -> ingest -> generator (watched for memorization) -> sample -> audits -> release gate ->
        verify, into --out; print the decision and where the reports are.

        Exit codes: 0 the gate released and the bundle verified; 3 the gate refused (no bundle); 4 the released
        bundle failed verification.
        """
        from synthgate.demo import DemoConfig, run_demo

        dev = resolve_device(device)
        config = DemoConfig(scenario=scenario, generator_steps=generator_steps, generator_seconds=generator_seconds)
        result = run_demo(out_dir, config, device=dev, overwrite=overwrite, log=say)
        if as_json:
            print_json(result.to_json())
        else:
            _render(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


def _render(result: DemoResult) -> None:
    facts = result.facts
    gen = facts["generator"]
    say(
        f"generator: {gen['kind']} ({gen['preset']}), {gen['steps']}/{gen['planned_steps']} steps "
        f"(stopped by {gen['stopped_by']}), trained on {gen['train_images']} images"
    )
    mon = gen.get("monitor") or {}
    if mon.get("kept"):
        say(f"memorization monitor: {mon['kept']['reason']}")
    a = facts["audit"]
    say(f"audit: {a['flagged']}/{a['audited']} flagged at threshold {a['threshold']}, "
        f"{a['leaked_subjects']} training subject(s) leaked")
    u = facts["utility"]
    say(f"utility: synthetic/real Dice {u['ratio']} (real-trained reference {u['real_dice']})")
    if result.decision == "release":
        say(f"{facts['released']} images, bundle {result.paths['bundle']} (verified)", "RELEASE:", "bold green",
            to=out)
        say(f"public report: {result.paths['public_report']}", to=out)
        say(f"dataset card: {result.paths['card']}", to=out)
    elif result.decision == "refuse":
        say("by the release gate (no bundle written):", "REFUSED", "bold red", to=out)
        for r in result.reasons:
            say(f"  - {r}", to=out)
    else:
        say(f"the bundle {result.paths['bundle']} failed verification:", "VERIFY FAILED", "bold red", to=out)
        for r in result.reasons:
            say(f"  - {r}", to=out)
    say(f"audit report (PRIVATE, shows training images): {result.paths['audit'] / 'report.html'}", to=out)
    say(f"summary: {result.out / 'demo.json'}", to=out)
