"""``synthgate generators``: train a generator into a run directory; sample a synthetic slice store from it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, cast

import typer

from synthgate.cli.common import handle_errors, out, print_json, progress_bar, resolve_device, say
from synthgate.cli.options import Device, DeviceOpt, DtypeOpt, Json, Out, Overwrite
from synthgate.data.store import StoreDtype
from synthgate.distributed import broadcast, on_main, sharded
from synthgate.errors import UsageError
from synthgate.generators.config import GeneratorKind, TrainConfig
from synthgate.generators.presets import Preset
from synthgate.generators.registry import preset
from synthgate.generators.runs import open_run

app = typer.Typer(
    help="Train a diffusion model or a StyleGAN2-class GAN on a slice store, and sample synthetic stores.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _load_config(kind: GeneratorKind, config_file: Path | None, preset_name: Preset) -> TrainConfig:

    if config_file is None:
        return preset(kind, preset_name)
    try:
        data = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {config_file}: cannot read it as JSON ({e}); give a config.json") from None
    data.setdefault("kind", str(kind))
    return TrainConfig.from_json(data)


@app.command()
@handle_errors
@sharded
def train(
    kind: Annotated[GeneratorKind, typer.Argument(help="Which generator.")],
    data: Annotated[Path, typer.Option("--data", help="Training set: a slice store (or any set input).")],
    run_out: Out,
    config_file: Annotated[Path | None, typer.Option("--config", help="A config.json (overrides --preset).")] = None,
    preset_name: Annotated[Preset, typer.Option("--preset", help="Named configuration.")] = Preset.TINY,
    steps: Annotated[int | None, typer.Option("--steps", help="Override the config's total steps.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Override the batch size (per process: under torchrun x the processes)."),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Override the learning rate.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the run seed.")] = None,
    max_images: Annotated[
        int | None, typer.Option("--max-images", help="Train on at most this many images (few -> memorization).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps in total.")] = None,
    max_time: Annotated[float | None, typer.Option("--max-time", help="Stop after this many seconds.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run at --out from its checkpoint.")] = False,
    monitor: Annotated[
        Path | None,
        typer.Option(
            "--monitor",
            "--monitor-holdout",
            help="Holdout set: audit fixed-seed samples for memorization while training (one process only).",
        ),
    ] = None,
    monitor_every: Annotated[
        int, typer.Option("--monitor-every", min=1, help="Steps between two memorization checks (with --monitor).")
    ] = 200,
    stop_on: Annotated[
        float | None,
        typer.Option(
            "--stop-on-memorization",
            min=0.0,
            max=0.999,
            help="Stop once the flagged fraction exceeds this and keep the last checkpoint at or below it.",
        ),
    ] = None,
    compile_nets: Annotated[
        bool, typer.Option("--compile", help="Run the networks through torch.compile (pays on a GPU in long runs).")
    ] = False,
    overwrite: Overwrite = False,
    device: DeviceOpt = Device.AUTO,
    as_json: Json = False,
) -> None:
    """Train a generator; writes the run directory --out: config.json, checkpoint.pt, log.jsonl, PNG sample
    grids, and with --monitor the memorization curve (monitor.json, monitor.png)."""
    from synthgate import pipeline
    from synthgate.generators.monitor import MonitorConfig

    dev = resolve_device(device)
    if monitor is None and stop_on is not None:
        raise UsageError("--stop-on-memorization needs --monitor HOLDOUT (the holdout set that calibrates the audit)")
    cfg = _load_config(kind, config_file, preset_name).with_overrides(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_images=max_images, compile=compile_nets or None
    )
    if resume:
        own = cast(TrainConfig, broadcast(on_main(lambda: open_run(run_out).config)))  # rank 0 reads the run
        changed = [o for o, v, f in (("--batch-size", batch_size, "batch_size"), ("--lr", lr, "lr"),
                                     ("--seed", seed, "seed"), ("--max-images", max_images, "max_images"))
                   if v is not None and v != getattr(own, f)]
        if config_file is not None and replace(cfg, steps=own.steps) != own:
            changed.insert(0, "--config")
        if changed:
            raise UsageError(f"--resume continues {run_out} with its own config.json; {', '.join(changed)} cannot "
                             "change it (only --steps, to extend the run)")
        cfg = own.with_overrides(steps=steps)
    if cfg.kind is not kind:
        raise UsageError(f"the config is for {cfg.kind} but the generator is {kind}; pass a {kind} config")
    watch = None if monitor is None else MonitorConfig(every=monitor_every, stop_on=stop_on, seed=cfg.seed)
    with progress_bar(f"training {kind}") as progress:
        stage = pipeline.train(
            cfg, data, run_out, device=dev, max_steps=max_steps, max_time=max_time, resume=resume,
            overwrite=overwrite, monitor=watch, holdout=monitor, progress=progress,
        )
    if as_json:
        print_json(stage.to_json())
        return
    result = stage.result
    losses = "  ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
    say(
        f"{result.kind}: step {result.steps} ({result.stopped_by}) on {result.n_train} images, {losses}, "
        f"{result.images_per_s:.1f} img/s on {dev}; run {result.run_dir}",
        to=out,
    )
    if result.grids:
        say(f"latest sample grid: {result.grids[-1]}")
    if stage.monitor is not None:
        last = stage.monitor["points"][-1] if stage.monitor["points"] else None
        if last is not None:
            say(f"memorization monitor: {last['flagged']}/{last['n']} flagged at step {last['step']}; "
                f"curve {result.run_dir / 'monitor.png'}")
        if stage.monitor["kept"] is not None:
            say(f"kept checkpoint: {stage.monitor['kept']['reason']}")


@app.command()
@handle_errors
@sharded
def sample(
    run: Annotated[Path, typer.Argument(help="Run directory written by 'generators train'.")],
    n: Annotated[
        int, typer.Option("--n", "--count", help="Number of synthetic images (--count under torchrun).")
    ],
    store_out: Out,
    seed: Annotated[int, typer.Option("--seed", help="Derives the per-sample seeds.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images generated at once.")] = 32,
    sample_steps: Annotated[
        int | None, typer.Option("--steps", help="DDIM steps (diffusion; default: config).")
    ] = None,
    truncation: Annotated[float | None, typer.Option("--truncation", help="Truncation psi (stylegan2).")] = None,
    dtype: DtypeOpt = StoreDtype.FLOAT32,
    overwrite: Overwrite = False,
    device: DeviceOpt = Device.AUTO,
    as_json: Json = False,
) -> None:
    """Sample a synthetic slice store at --out (per-sample seeds in its index) from a trained run."""
    from synthgate import pipeline

    dev = resolve_device(device)
    with progress_bar("sampling") as progress:
        stage = pipeline.sample(
            run, n, store_out, seed=seed, device=dev, batch_size=batch_size, sample_steps=sample_steps,
            truncation=truncation, dtype=dtype, overwrite=overwrite, progress=progress,
        )
    if as_json:
        print_json(stage.to_json())
        return
    say(f"{stage.n} {stage.kind} samples (step {stage.step}) -> {stage.store}", to=out)
