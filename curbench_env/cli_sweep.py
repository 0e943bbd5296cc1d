"""`curbench sweep SPEC`: many sessions (agents × scaffolds × seeds × iteration budgets) on Ray."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from curbench_env.cli import app, console


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep spec (.yaml or .toml): envs, agents, "
                                                                   "scaffolds, seeds, iterations, task_args.")],
    out: Annotated[Path | None, typer.Option(help="Sweep directory (default sweeps/<spec name>).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (e.g. auto, ray://host:10001); "
                                                     "default: a local Ray on this machine.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Sessions at once (default: what the Ray resources hold "
                                                         "at the spec's cpus/gpus per session).")] = None,
    report: Annotated[bool, typer.Option(help="Write the aggregate report to SWEEP_DIR/report at the end.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the sessions and their state; run nothing.")] = False,
) -> None:
    """Run every unfinished session of a sweep as a Ray task; finished ones are skipped, interrupted ones
    resumed. Each session is an ordinary run directory under SWEEP_DIR/sessions/."""
    from curbench_env.sweep import in_use, load_spec, run_dir_of, session_state

    spec = load_spec(spec_file)
    sweep_dir = out or Path("sweeps") / spec.name
    if dry_run:
        for s in spec.sessions:
            state = "running" if in_use(run_dir_of(sweep_dir, s)) else session_state(sweep_dir, s)
            console.print(f"{state:>11}  {escape(s.name)}")
        console.print(f"{len(spec.sessions)} sessions · {spec.cpus:g} CPU, {spec.gpus:g} GPU each · "
                      f"{spec.max_retries} retries · sweep directory {sweep_dir}")
        return
    from curbench_env.sweep_runner import run_sweep

    t0 = time.monotonic()
    progress = run_sweep(spec, sweep_dir, console=console, address=address, concurrency=concurrency)
    counts = progress.counts()
    minutes = (time.monotonic() - t0) / 60
    console.print(f"[bold]{counts['finished']} finished, {counts['skipped']} already done, {counts['failed']} failed[/]"
                  f" in {minutes:.1f} min ({60 * counts['finished'] / max(minutes, 1e-9):.1f} sessions/hour at "
                  f"concurrency {progress.concurrency}) · {sweep_dir}")
    if report:
        from curbench_env.sweep_report import write_sweep_report

        files = write_sweep_report(sweep_dir, sweep_dir / "report", console=console)
        console.print("report: " + ", ".join(str(f) for f in files if f.suffix in (".md", ".html", ".png")))
    if counts["failed"]:
        for error in progress.errors.values():
            console.print(f"[red]failed:[/] {escape(error)}")
        console.print("re-run the same command to retry the failed sessions (interrupted ones are resumed)")
        raise SystemExit(1)  # not typer.Exit: main() runs the app with standalone_mode=False, which returns it
