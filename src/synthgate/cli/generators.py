"""``synthgate generators``: train a generator into a run directory; sample a synthetic slice store from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from synthgate.cli.common import Device, err, handle_errors, out, print_json, progress_bar, resolve_device
from synthgate.distributed import on_main, sharded
from synthgate.errors import UsageError
from synthgate.generators.config import GeneratorKind, Preset

app = typer.Typer(
    help="Train a diffusion model or a StyleGAN2-class GAN on a slice store, and sample synthetic stores.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _load_config(kind: GeneratorKind, config_file: Path | None, preset_name: Preset) -> Any:
    from synthgate.generators.config import TrainConfig
    from synthgate.generators.presets import preset

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
def train(
    kind: GeneratorKind = typer.Argument(..., help="Which generator."),
    data: Path = typer.Option(..., "--data", help="Training set: a slice store (or any set input)."),
    run_out: Path = typer.Option(..., "--out", help="Run directory to write (or to continue with --resume)."),
    config_file: Path | None = typer.Option(None, "--config", help="A config.json (overrides --preset)."),
    preset_name: Preset = typer.Option(Preset.TINY, "--preset", help="Named configuration."),
    steps: int | None = typer.Option(None, "--steps", help="Override the config's total steps."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Override the batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Override the learning rate."),
    seed: int | None = typer.Option(None, "--seed", help="Override the run seed."),
    max_images: int | None = typer.Option(
        None, "--max-images", help="Train on at most this many images (few images -> memorization)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps in total."),
    max_time: float | None = typer.Option(None, "--max-time", help="Stop after this many seconds."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    device: Device = typer.Option(Device.AUTO, "--device", help="Where to train."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a generator; writes config.json, checkpoint.pt, log.jsonl and PNG sample grids into --out."""
    from synthgate.data.readers import load_set
    from synthgate.generators.train import TrainProgress, train_generator

    dev = resolve_device(device)
    cfg = _load_config(kind, config_file, preset_name).with_overrides(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_images=max_images
    )
    if resume:
        from synthgate.generators.runs import open_run

        cfg = open_run(run_out).config  # a resumed run keeps its own configuration
    s = load_set(data)
    with progress_bar(f"training {kind}", total=max_steps or cfg.steps) as advance:

        def report(p: TrainProgress) -> None:
            loss = next(iter(p.losses.values()), float("nan"))
            advance(p.step, total=p.total, rate=f"{p.images_per_s:.1f} img/s  loss {loss:.4f}")

        result = train_generator(
            kind,
            s,
            run_out,
            cfg,
            device=dev,
            max_steps=max_steps,
            max_time=max_time,
            resume=resume,
            progress=report,
            overwrite=overwrite,
        )
    summary = {
        "run_dir": str(result.run_dir),
        "kind": str(result.kind),
        "steps": result.steps,
        "start_step": result.start_step,
        "stopped_by": result.stopped_by,
        "losses": result.losses,
        "images_per_s": round(result.images_per_s, 2),
        "elapsed_s": round(result.elapsed_s, 1),
        "n_train": result.n_train,
        "device": dev,
        "checkpoint": str(result.checkpoint),
        "grids": [str(g) for g in result.grids],
    }
    if as_json:
        print_json(summary)
        return
    losses = "  ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
    out.print(
        f"{result.kind}: step {result.steps} ({result.stopped_by}) on {result.n_train} images, {losses}, "
        f"{result.images_per_s:.1f} img/s on {dev}; run {result.run_dir}",
        highlight=False,
    )
    if result.grids:
        err.print(f"latest sample grid: {result.grids[-1]}", highlight=False)


@app.command()
@handle_errors
@sharded
def sample(
    run: Path = typer.Argument(..., help="Run directory written by 'generators train'."),
    n: int = typer.Option(..., "--n", help="Number of synthetic images."),
    store_out: Path = typer.Option(..., "--out", help="Slice store to write."),
    seed: int = typer.Option(0, "--seed", help="Derives the per-sample seeds."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images generated at once."),
    sample_steps: int | None = typer.Option(None, "--steps", help="DDIM steps (diffusion; default: config)."),
    truncation: float | None = typer.Option(None, "--truncation", help="Truncation psi (stylegan2)."),
    dtype: str = typer.Option("float32", "--dtype", help="Store dtype: float32 or float16."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    device: Device = typer.Option(Device.AUTO, "--device", help="Where to sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Sample a synthetic slice store (per-sample seeds in its index) from a trained run."""
    from synthgate.data.store import write_store
    from synthgate.generators.sample import sample_generator

    dev = resolve_device(device)
    if store_out.exists() and not overwrite:
        raise UsageError(f"{store_out} already exists; choose another --out or pass --overwrite")
    with progress_bar("sampling", total=n) as advance:
        s = sample_generator(
            run,
            n,
            seed=seed,
            device=dev,
            batch_size=batch_size,
            sample_steps=sample_steps,
            truncation=truncation,
            progress=lambda done, total: advance(done, total=total),
        )
    path = on_main(lambda: write_store(s, store_out, dtype=dtype, overwrite=overwrite)) or store_out  # rank 0
    if as_json:
        print_json({"store": str(path), "n": len(s), "kind": s.meta["generator"]["kind"], "device": dev})
        return
    out.print(f"{len(s)} {s.meta['generator']['kind']} samples -> {path}", highlight=False)
