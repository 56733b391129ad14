"""``synthgate release``: the policy, the gate and bundle, verification and publishing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from synthgate.cli.common import err, handle_errors, out, print_json
from synthgate.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from synthgate.release.gate import GateDecision
    from synthgate.release.verify import VerifyResult

app = typer.Typer(
    help="Gate a synthetic set on its audits and write, verify and publish the release bundle.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def render_checks(decision: GateDecision) -> None:
    """The gate's checks as a table on stderr."""
    from rich.table import Table

    table = Table(title="release gate")
    for col in ("", "check", "figure", "policy", "note"):
        table.add_column(col)
    for c in decision.checks:
        mark = "[green]pass[/]" if c.passed else "[bold red]FAIL[/]"
        table.add_row(mark, c.name, c.value, c.limit, c.detail)
    err.print(table)
    for w in decision.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


def render_verify(result: VerifyResult) -> None:
    """Verification steps, one line each, on stdout."""
    for c in result.checks:
        mark = "[green]ok[/]  " if c.ok else "[bold red]FAIL[/]"
        out.print(f"{mark} {c.name}: {c.detail}", highlight=False)


@app.command("policy")
@handle_errors
def policy(
    init: Path | None = typer.Option(None, "--init", help="Write the default policy (commented TOML) here."),
    check: Path | None = typer.Option(None, "--check", help="Read a policy file and print it as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --init file."),
) -> None:
    """Write the default release policy, or check one."""
    from synthgate.release.policy import load_policy, write_policy_template

    if (init is None) == (check is None):
        raise UsageError("give exactly one of --init FILE (write the defaults) or --check FILE")
    if init is not None:
        write_policy_template(init, overwrite=overwrite)
        err.print(f"wrote {init}; edit it and pass it to 'synthgate release build --policy {init}'")
    elif check is not None:
        print_json(load_policy(check).to_json())


@app.command("build")
@handle_errors
def build(
    synthetic: Path = typer.Option(..., "--synthetic", help="The audited synthetic set (store or folder)."),
    channels: str | None = typer.Option(
        None, "--channels", help="Names of the channels of an image-folder --synthetic, in order (e.g. "
        "t1,t1c,t2,flair,label); without it they take --train's names by position."),
    audit: Path = typer.Option(..., "--audit", help="Folder of 'synthgate audit memorization'."),
    utility: Path | None = typer.Option(None, "--utility", help="Folder of 'synthgate audit utility'."),
    policy_file: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: the built-in defaults)."),
    out_dir: Path = typer.Option(..., "--out", help="Bundle folder to create (a BagIt bag)."),
    train: Path | None = typer.Option(None, "--train", help="Training set, to record its manifest hash."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out bundle."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON on stdout."),
) -> None:
    """Evaluate the gate; on a pass write the bundle, on a refusal exit 3 with every failing check."""
    from synthgate.data.imageset import conform_to
    from synthgate.data.readers import load_set, parse_channels
    from synthgate.release.bundle import build_release
    from synthgate.release.gate import ReleaseRefused
    from synthgate.release.policy import ReleasePolicy, load_policy

    if out_dir.exists() and not overwrite:
        raise UsageError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    pol = load_policy(policy_file) if policy_file is not None else ReleasePolicy()
    if policy_file is None:
        err.print("no --policy: using the default policy ('synthgate release policy --init FILE' writes it)")
    syn = load_set(synthetic, channels=parse_channels(channels))
    tr = load_set(train) if train is not None else None
    if tr is not None:
        syn = conform_to(syn, tr, "--synthetic", "--train")
    try:
        result = build_release(syn, audit, utility, pol, out_dir, overwrite=overwrite, train=tr)
    except ReleaseRefused as e:
        if as_json:
            print_json(e.decision.to_json())
        render_checks(e.decision)
        raise
    if as_json:
        print_json({**result.decision.to_json(), "bundle": str(result.path)})
    else:
        render_checks(result.decision)
    out.print(f"released {result.n_released} images: {result.path}", highlight=False)
    err.print(f"public report: {result.report_html}", highlight=False)


@app.command("verify")
@handle_errors
def verify(
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    train: Path | None = typer.Option(None, "--train", help="Training set: re-audit the bundle against it."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON on stdout."),
) -> None:
    """Check a bundle: BagIt checksums, HF round trip, NIfTI geometry, and with --train a re-audit (exit 4)."""
    from synthgate.data.readers import load_set
    from synthgate.release.verify import verify_bundle

    tr = load_set(train) if train is not None else None
    result = verify_bundle(bundle, train=tr)
    if as_json:
        print_json(result.to_json())
    else:
        render_verify(result)
    if not result.ok:
        names = ", ".join(c.name for c in result.failed)
        raise IntegrityError(f"{bundle} failed verification: {names}")
    err.print(f"{bundle}: verified, {result.n_images} images", highlight=False)


@app.command("publish")
@handle_errors
def publish(
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    repo_id: str = typer.Option(..., "--repo-id", help="Hugging Face dataset repository, ORG/NAME."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    token: str | None = typer.Option(None, "--token", envvar="HF_TOKEN", help="Hub token (default: login)."),
) -> None:
    """Verify the bundle, then upload its payload to a Hugging Face dataset repository."""
    from synthgate.release.publish import publish_bundle

    result = publish_bundle(bundle, repo_id, private=private, token=token)
    out.print(f"published {result.verification.n_images} images to {result.url}", highlight=False)
    err.print(f"gated access: {result.gated}; private: {result.private}", highlight=False)
