"""``synthgate release``: the policy, the gate and bundle, verification and publishing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from synthgate import pipeline
from synthgate.cli.common import err, handle_errors, out, print_json, say, warn
from synthgate.cli.options import FolderChannels, Json, Out, Overwrite, SubjectPatternOpt, SubjectsOpt
from synthgate.data.imageset import conform_to
from synthgate.data.readers import load_set, parse_channels
from synthgate.data.subjects import apply_subjects, subject_map
from synthgate.errors import IntegrityError, UsageError
from synthgate.release.gate import GateDecision, ReleaseRefused
from synthgate.release.policy import ReleasePolicy, load_policy, write_policy_template
from synthgate.release.publish import publish_bundle
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
        mark = {"pass": Text("pass", "green"), "waived": Text("waived", "dim")}.get(c.status, Text("FAIL", "bold red"))
        table.add_row(mark, *(Text(str(v)) for v in (c.name, c.value, c.limit, c.detail)))
    err.print(table)
    for w in decision.warnings:
        warn(w)


def render_verify(result: VerifyResult) -> None:
    """Verification steps, one line each, on stdout."""
    for c in result.checks:
        say(f"{c.name}: {c.detail}", "ok  " if c.passed else "FAIL", "green" if c.passed else "bold red", to=out)


@app.command("policy")
@handle_errors
def policy(
    init: Annotated[
        Path | None, typer.Option("--init", help="Write the default policy (commented TOML) here.")
    ] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Read a policy file and print it as JSON.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --init file.")] = False,
) -> None:
    """Write the default release policy, or check one."""

    if (init is None) == (check is None):
        raise UsageError("give exactly one of --init FILE (write the defaults) or --check FILE")
    if init is not None:
        write_policy_template(init, overwrite=overwrite)
        say(f"wrote {init}; edit it and pass it to 'synthgate release build --policy {init}'")
    elif check is not None:
        print_json(load_policy(check).to_json())


@app.command("build")
@handle_errors
def build(
    synthetic: Annotated[Path, typer.Option("--synthetic", help="The audited synthetic set (store or folder).")],
    audit: Annotated[Path, typer.Option("--audit", help="Folder of 'synthgate audit memorization'.")],
    out_dir: Out,
    utility: Annotated[Path | None, typer.Option("--utility", help="Folder of 'synthgate audit utility'.")] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="Policy TOML (default: the built-in defaults).")
    ] = None,
    train: Annotated[
        Path | None, typer.Option("--train", help="Training set: checked against the audit's content hashes.")
    ] = None,
    holdout: Annotated[
        Path | None, typer.Option("--holdout", help="Holdout set: checked against the audit's content hashes.")
    ] = None,
    allow_real: Annotated[
        bool, typer.Option("--allow-real", help="Release real (ingested, not generated) images; the card says so.")
    ] = False,
    channels: FolderChannels = None,
    subjects: SubjectsOpt = None,
    subject_pattern: SubjectPatternOpt = None,
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Evaluate the gate; on a pass write the bundle (a BagIt bag) at --out, on a refusal exit 3 with every
    failing check."""

    pol = load_policy(policy_file) if policy_file is not None else ReleasePolicy()
    if policy_file is None:
        say("no --policy: using the default policy ('synthgate release policy --init FILE' writes it)")
    syn = load_set(synthetic, channels=parse_channels(channels))
    groups = subject_map(subjects, subject_pattern)
    tr = apply_subjects(load_set(train), groups, "--train") if train is not None else None
    ho = apply_subjects(load_set(holdout), groups, "--holdout") if holdout is not None else None
    if tr is not None:
        syn = conform_to(syn, tr, "--synthetic", "--train")
    try:
        stage = pipeline.build(syn, audit, utility, pol, out_dir, train=tr, overwrite=overwrite, holdout=ho,
                               allow_real=allow_real)
    except ReleaseRefused as e:
        if as_json:
            print_json(e.decision.to_json())
        render_checks(e.decision)
        raise
    result = stage.result
    if as_json:
        print_json(stage.to_json())
        return
    render_checks(result.decision)
    say(f"released {result.n_released} images: {result.path}", to=out)
    say(f"public report: {result.report_html}")
    say(f"dataset card: {stage.card}")


@app.command("verify")
@handle_errors
def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder.")],
    train: Annotated[
        Path | None, typer.Option("--train", help="Training set: re-audit the bundle against it.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Check a bundle: BagIt checksums, HF round trip, NIfTI geometry, and with --train a re-audit (exit 4)."""

    result = pipeline.verify(bundle, train=train)
    if as_json:
        print_json(result.to_json())
    else:
        render_verify(result)
    if not result.ok:
        names = ", ".join(c.name for c in result.failed)
        raise IntegrityError(f"{bundle} failed verification: {names}")
    say(f"{bundle}: verified, {result.n_images} images")


@app.command("publish")
@handle_errors
def publish(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hugging Face dataset repository, ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HF_TOKEN", help="Hub token (default: login).")
    ] = None,
) -> None:
    """Verify the bundle, then upload its payload to a Hugging Face dataset repository."""

    result = publish_bundle(bundle, repo_id, private=private, token=token)
    say(f"published {result.verification.n_images} images to {result.url}", to=out)
    say(f"gated access: {result.gated}; private: {result.private}")
