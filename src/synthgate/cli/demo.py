"""``synthgate demo``: the whole flow on the built-in phantom cohort."""

from __future__ import annotations

from pathlib import Path

import typer

from synthgate.cli.common import Device, err, handle_errors, out, print_json
from synthgate.errors import IntegrityError
from synthgate.release.demo import Scenario


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        out_dir: Path = typer.Option(Path("demo-output"), "--out", help="Demo folder (every stage's outputs)."),
        scenario: Scenario = typer.Option(
            Scenario.DEFAULT,
            "--scenario",
            help="default: a tiny generator; memorizing: one overfitted on a few images.",
        ),
        device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available, else CPU."),
        generator_steps: int | None = typer.Option(
            None, "--generator-steps", min=1, help="Generator training steps (default 2000; memorizing 3000)."
        ),
        generator_seconds: float | None = typer.Option(
            None, "--generator-seconds", min=1, help="Generator training time budget (default 420 s)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing demo folder."),
        as_json: bool = typer.Option(False, "--json", help="Print demo.json on stdout."),
    ) -> None:
        """Phantom cohort -> ingest -> generator -> sample -> audits -> release gate -> verify; print the decision.

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
            log=lambda msg: err.print(msg, markup=False, highlight=False),
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
        err.print(
            f"generator: {gen['kind']} ({gen['preset']}), {gen['steps']}/{gen['planned_steps']} steps "
            f"(stopped by {gen['stopped_by']}), trained on {gen['train_images']} images",
            highlight=False,
        )
    if "audit" in facts:
        a = facts["audit"]
        err.print(
            f"audit: {a['flagged']}/{a['audited']} flagged at threshold {a['threshold']}, "
            f"{a['leaked_subjects']} training subject(s) leaked",
            highlight=False,
        )
        if result.scenario == "memorizing" and a["flagged"] == 0 and gen:
            err.print(
                f"[yellow]note:[/] the generator copied no training image within its budget ({gen['steps']} of "
                f"{gen['planned_steps']} steps); give it more --generator-seconds to see the memorization checks fail",
                highlight=False,
            )
    if "utility_ratio" in facts:
        err.print(f"utility (synthetic/real Dice): {facts['utility_ratio']}", highlight=False)
    if result.missing:
        err.print(f"[yellow]missing stages (not installed):[/] {', '.join(result.missing)}")
    if result.decision == "release":
        status = "verified" if result.verified else "[bold red]FAILED verification[/]"
        out.print(f"[bold green]RELEASE[/]: {facts.get('released')} images, bundle {result.paths['bundle']} ({status})")
        out.print(f"public report: {result.paths['public_report']}", highlight=False)
    elif result.decision == "refuse":
        out.print("[bold red]REFUSED[/] by the release gate:")
        for r in result.reasons:
            out.print(f"  - {r}", highlight=False)
    else:
        out.print("[yellow]INCOMPLETE[/]: the flow stopped at a missing stage; no decision")
    if "audit" in result.paths:
        out.print(
            f"audit report (PRIVATE, shows training images): {result.paths['audit'] / 'report.html'}", highlight=False
        )
    out.print(f"summary: {result.out / 'demo.json'}", highlight=False)
