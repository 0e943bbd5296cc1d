"""`curbench`: run sessions, play one yourself, inspect and resume runs, build worlds, baselines."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from curbench_env.console import make_console
from curbench_env.errors import CurbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Curation-Bench as a Gymnasium environment: curate training data through a terminal.")
console = make_console()
err = make_console(stderr=True, soft_wrap=True)

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Env id (see `curbench list`).")]
SeedOpt = Annotated[int, typer.Option(help="Episode seed (fixes the training seed).")]
BackendOpt = Annotated[str, typer.Option(help="Workspace backend: auto, bwrap, docker or local.")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="Task preset (MiniVQA: default, tiny).")]
TaskArgOpt = Annotated[list[str] | None, typer.Option(
    "--task-arg", help="KEY=VALUE passed to the task (repeatable), e.g. device=cuda for MiniVQA on a GPU.")]


def task_kwargs(preset: str | None, task_args: list[str] | None) -> dict[str, Any]:
    """``--preset`` and ``--task-arg KEY=VALUE`` options as task keyword arguments (values read as JSON
    where they parse, else as strings)."""
    out: dict[str, Any] = {"preset": preset} if preset else {}
    for item in task_args or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--task-arg {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _log_path() -> Path:
    from curbench_env.pipeline import curbench_home

    path = curbench_home() / "logs" / "last-error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error classes: recent typer releases vendor click as ``typer._click``, whose
    exceptions are not ``click``'s."""
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # typer that uses the click package itself
        pass
    else:
        kinds.append(ClickException)
    return tuple(kinds)


def main() -> None:
    """Entry point: user errors become one clear line; crashes a line and a log path."""

    try:
        code = app(standalone_mode=False)  # click returns a raised Exit's code here instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
    except (CurbenchError, FileExistsError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("[yellow]interrupted[/] (the run directory keeps every step so far; `curbench resume` continues)")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # the CLI's last line of defence
        if isinstance(exc, _usage_errors()):  # unknown option, bad value: click's own message and exit code
            exc.show()
            sys.exit(exc.exit_code)
        log = _log_path()
        log.write_text(traceback.format_exc())
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {exc} (traceback in {log})")
        sys.exit(1)


def _make_env(env_id: str, backend: str, run_dir: Path | None, iterations: int | None,
              scaffolds: list[str] | None = None, task_options: dict[str, Any] | None = None):
    from curbench_env.runner import make_env

    return make_env(env_id, task_args=task_options, scaffolds=scaffolds or (), backend=backend, run_dir=run_dir,
                    iteration_budget=iterations)


@app.command("list")
def list_envs() -> None:
    """List the registered env ids."""
    import curbench_env

    table = Table("id", "task", "description")
    for spec in curbench_env.ENV_IDS.values():
        table.add_row(spec.id, spec.task, spec.description)
    console.print(table)


@app.command()
def setup(env: Annotated[str, typer.Argument(help="Env id to prepare.")] = "Curation-MiniVQA-v0",
          task_preset: PresetOpt = None, task_args: TaskArgOpt = None,
          rebuild: Annotated[bool, typer.Option(help="Regenerate the base model from its seed and compare it "
                                                     "with the shipped one (MiniVQA).")] = False,
          install: Annotated[bool, typer.Option(help="With --rebuild: use the rebuilt base model for this world "
                                                     "(by default it is only compared).")] = False) -> None:
    """Build (once) what an env needs: its world, base model and signals. Cached in $CURBENCH_HOME."""
    from curbench_env.registry import env_entry, load_task, task_kwargs_for

    if install and not rebuild:
        raise ValueError("--install goes with --rebuild (it installs the rebuilt base model)")
    task = load_task(env_entry(env).task, **task_kwargs_for(env, task_kwargs(task_preset, task_args)))
    if rebuild:
        if not hasattr(task, "rebuild_base_model"):
            raise ValueError(f"{env} has no base model to rebuild (only Curation-MiniVQA-v0 ships one)")
        report = task.rebuild_base_model(log=console.print, install=install)
        if report is None:
            console.print("rebuilt; no base model ships for this preset, so there is nothing to compare with")
        else:
            for name, same in report.items():
                console.print(f"  {name}: {'[green]identical to the shipped file' if same else '[red]differs'}[/]")
            what = "base model and loss signal" if "signals/loss.npy" in report else "base model"
            console.print(f"the rebuilt {what}: byte-identical to the shipped files" if all(report.values()) else
                          f"the rebuilt {what}: not identical to the shipped files (another torch build or CPU kind "
                          "computes them differently); " + ("the rebuilt model is installed for this world" if install
                                                            else "the world keeps the shipped model"))
        return
    with console.status(f"preparing {env} ..."):
        task.prepare()
    console.print(f"[green]ready:[/] {env} (pool at {task.pool_dir})")


@app.command()
def run(
    env: EnvOpt = "Curation-MiniVQA-v0",
    agent: Annotated[str, typer.Option(help="curator | scripted:NAME | litellm:MODEL | module:Class | "
                                             "claude-code[:MODEL] | codex[:MODEL]")] = "curator",
    seed: SeedOpt = 0,
    backend: BackendOpt = "auto",
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/<env>-<time>-s<seed>).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iteration budget (default 10).")] = None,
    scaffold: Annotated[list[str] | None, typer.Option(help="Scaffold wrapper(s) to apply.")] = None,
    task_preset: PresetOpt = None,
    task_args: TaskArgOpt = None,
    agent_base_url: Annotated[str | None, typer.Option(
        help="Model endpoint for claude-code/codex (a proxy or local server; default: the provider's)")] = None,
    wall_clock: Annotated[float, typer.Option(help="claude-code/codex: stop the agent after this many seconds.")] = 7200,
    native: Annotated[bool, typer.Option(help="claude-code/codex: run the CLI inside the sandbox, its own shell in "
                                              "the workspace, `submit` on its PATH (the paper's setup; needs bwrap "
                                              "and the provider key, which stays outside)")] = False,
) -> None:
    """Run one curation session with an agent and print the iterations table."""
    from curbench_env.agents import load_policy
    from curbench_env.agents.cli_agents import is_cli_agent, split_native
    from curbench_env.runner import run_episode

    agent, native_flag = split_native(agent)
    if native or native_flag:
        from curbench_env.cli_serve import run_native_agent

        run_native_agent(env, agent, seed, backend, run_dir, iterations, scaffold, task_kwargs(task_preset, task_args),
                         agent_base_url, wall_clock)
        return
    if is_cli_agent(agent):
        from curbench_env.cli_serve import run_cli_agent

        run_cli_agent(env, agent, seed, backend, run_dir, iterations, scaffold,
                       [*([f"preset={task_preset}"] if task_preset else []), *(task_args or [])], agent_base_url,
                       wall_clock)
        return

    policy = load_policy(agent, seed=seed)
    console.print(f"[bold]{env}[/] · agent {escape(agent)} · seed {seed} · preparing (first use builds the world) ...")
    e = _make_env(env, backend, run_dir, iterations, scaffold, task_kwargs(task_preset, task_args))
    try:
        summary = run_episode(e, policy, seed=seed, console=console, agent=agent)
    finally:
        e.close()
    _print_iterations(Path(summary["run_dir"]))
    console.print(f"best {summary['best_score']:.2f} (base {summary['base_score']:.2f}, return "
                  f"{summary['return']:+.2f}) in {summary['elapsed_s']}s · run directory: [bold]{summary['run_dir']}[/]")


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an interrupted episode.")],
    agent: Annotated[str | None, typer.Option(help="Agent (default: the one recorded).")] = None,
    backend: Annotated[str | None, typer.Option(help="Workspace backend (default: the one recorded).")] = None,
) -> None:
    """Continue an interrupted episode from its run directory, with every setting it was recorded with."""
    from curbench_env.agents import load_policy
    from curbench_env.agents.cli_agents import is_cli_agent
    from curbench_env.config import RunConfig
    from curbench_env.runner import resume_env, run_episode
    from curbench_env.trajectory import RunDirectory

    cfg = RunConfig.from_dict(RunDirectory.existing(run_dir).config)
    if agent is None and cfg.agent and is_cli_agent(cfg.agent):
        raise CurbenchError(f"{run_dir} was driven by {cfg.agent}: a coding-agent CLI's conversation cannot be "
                            "resumed. Continue the episode with another agent (`curbench resume "
                            f"{run_dir} --agent curator`), or start a new run with `--agent {cfg.agent}`")
    agent = agent or cfg.agent or "curator"
    policy = load_policy(agent, seed=cfg.seed)
    env = resume_env(run_dir, backend=backend)
    try:
        summary = run_episode(env, policy, console=console, resume=True, agent=agent)
    finally:
        env.close()
    _print_iterations(Path(summary["run_dir"]))
    console.print(f"run directory: [bold]{summary['run_dir']}[/]")


@app.command()
def play(
    env: EnvOpt = "Curation-MiniVQA-v0",
    seed: SeedOpt = 0,
    backend: BackendOpt = "auto",
    run_dir: Annotated[Path | None, typer.Option()] = None,
    task_preset: PresetOpt = None,
    task_args: TaskArgOpt = None,
) -> None:
    """Be the agent: type shell commands and see exactly what an agent sees."""
    e = _make_env(env, backend, run_dir, None, task_options=task_kwargs(task_preset, task_args))
    try:
        obs, info = e.reset(seed=seed)
        console.print(obs["output"], markup=False, highlight=False)
        while True:
            try:
                action = console.input(f"[bold cyan]it {info['iteration']}/{info['iteration'] + info['budget_left']}"
                                       f" best {info['best_score']:.2f} $[/] ")
            except EOFError:
                action = "done"
            obs, reward, term, trunc, info = e.step(action)
            console.print(obs["output"], markup=False, highlight=False)
            if reward:
                console.print(f"[green]reward {reward:+.2f}[/]")
            if term or trunc:
                break
    finally:
        e.close()
    console.print(f"run directory: [bold]{e.unwrapped.run_dir}[/]")


def _print_iterations(run_dir: Path) -> None:
    from curbench_env.trajectory import RunDirectory

    run = RunDirectory(run_dir)
    its = run.iterations()
    table = Table(title=f"{run_dir.name}", show_lines=False)
    for col in ("it", "file", "n", "average", "Δ base", "reward", "commit"):
        table.add_column(col, justify="right" if col not in ("file", "commit") else "left")
    bench = list(its[0]["scores"]) if its else []
    for b in bench:
        table.add_column(b[:9], justify="right")
    best = max((m["average"] for m in its), default=None)
    for m in its:
        style = "bold green" if m["average"] == best else None
        table.add_row(str(m["iteration"]), escape(Path(m["file"]).name), str(m["n_examples"]), f"{m['average']:.2f}",
                      f"{m['delta_vs_base']:+.2f}", f"{m['reward']:+.2f}", (m.get("commit") or "")[:8],
                      *[f"{m['scores'].get(b, float('nan')):.0f}" for b in bench], style=style)
    console.print(table)


@app.command()
def inspect(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Table of a run's iterations: score, delta, benchmarks, commit."""
    from curbench_env.trajectory import RunDirectory

    run = RunDirectory.existing(run_dir)
    cfg = run.config
    steps = run.steps()
    console.print(f"[bold]{escape(str(cfg['env_id']))}[/] seed {cfg.get('seed')} · {len(steps) - 1} steps · "
                  f"agent {escape(str(cfg.get('agent') or '?'))}")
    _print_iterations(run_dir)
    refused = [s for s in steps if (s.get("submission") or {}).get("status") in ("refused", "crashed")]
    if refused:
        console.print(f"{len(refused)} refused/crashed submission(s) (no iteration spent)")
    _print_rewrites(run_dir)


def _print_rewrites(run_dir: Path) -> None:
    """The rewriting tool's calls of a run (rewrites/calls.jsonl), if it had one."""
    from curbench_env.rewrite import read_calls

    calls = read_calls(run_dir)
    if not calls:
        return
    table = Table(title="rewrite calls (per-record prompts and outputs: rewrites/NNN.jsonl)")
    for col in ("call", "step", "ids", "sent", "written", "changed", "failed", "cost $", "left", "out", "prompt"):
        table.add_column(col, justify="left" if col in ("ids", "out", "prompt") else "right")
    for c in calls:
        table.add_row(str(c.get("call")), str(c.get("step")), escape(Path(str(c.get("ids_file"))).name), str(c.get("n")),
                      "withheld" if c.get("withheld") else str(c.get("rewritten")), str(c.get("changed")),
                      str(c.get("failed")), f"{float(c.get('cost_usd', 0.0)):.4f}", str(c.get("budget_left")),
                      escape(str(c.get("out"))), escape(str(c.get("prompt"))[:60]))
    console.print(table)


@app.command()
def baselines(
    env: Annotated[str, typer.Argument(help="Env id.")] = "Curation-MiniVQA-v0",
    seeds: Annotated[int, typer.Option(help="Training seeds per policy.")] = 3,
    out: Annotated[Path, typer.Option(help="JSON file for the table.")] = Path("baselines.json"),
    backend: BackendOpt = "auto",
    task_preset: PresetOpt = None,
    task_args: TaskArgOpt = None,
    full: Annotated[bool, typer.Option(help="Include the full-pool fine-tune (slow).")] = True,
    full_seeds: Annotated[int | None, typer.Option(help="Training seeds of the full-pool fine-tune (default: --seeds).")] = None,
    world_seeds: Annotated[str | None, typer.Option(
        help="Comma-separated world seeds (the task's `seed`): one table per world, plus the ranking agreement.")] = None,
    policies: Annotated[str | None, typer.Option(help="Comma-separated scripted policies (default: the task's set).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Same as --out.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the tables as Markdown (as in the README).")] = None,
) -> None:
    """Fidelity table: base, random, scripted policies and the full pool, over seeds (and world seeds)."""
    from curbench_env.agents.baselines import markdown_tables, print_table, run_baselines

    kwargs = task_kwargs(task_preset, task_args)
    try:
        worlds = [int(s) for s in world_seeds.split(",")] if world_seeds else None
    except ValueError:
        raise typer.BadParameter(f"--world-seeds takes comma-separated integers, not {world_seeds!r}") from None
    out = json_out or out
    result = run_baselines(env, seeds=seeds, backend=backend, task_kwargs=kwargs, include_full=full, console=console,
                           policies=[p.strip() for p in policies.split(",")] if policies else None,
                           world_seeds=worlds, full_seeds=full_seeds)
    out.write_text(json.dumps(result, indent=2))
    if markdown:
        markdown.write_text(markdown_tables(result))
    print_table(result, console)
    console.print(f"written to {out}")


@app.command("build-leakage-index")
def build_leakage_index(
    env: Annotated[str, typer.Argument(help="Env id.")] = "Curation-LLaVA10k-v0",
    suite: Annotated[Path | None, typer.Option(help="Benchmark suite JSON (default: the env's).")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the index (default: where the env reads it).")] = None,
) -> None:
    """Hash the evaluation sets' pictures and long questions (read through lmms-eval) for the audit."""
    from curbench_env.registry import env_entry, load_task

    spec = env_entry(env)
    family, kwargs = spec.task, spec.task_kwargs
    if family != "llava10k":
        raise ValueError(f"{env} builds its leakage index with its world (`curbench setup {env}`)")
    from curbench_env.envs.llava665k.leakage import build_index

    task = load_task(family, **({**kwargs, "suite": suite} if suite else kwargs))
    target = out or task.leakage_index_path
    index = build_index(task.suite, target, log=console.print)
    console.print(f"[green]leakage index:[/] {len(index.image_hashes):,} pictures, {len(index.text_hashes):,} "
                  f"questions → {target}")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to compare.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("report"),
    judge: Annotated[str | None, typer.Option(help="litellm model for the optional LLM judge.")] = None,
) -> None:
    """Plots (score per iteration, per benchmark, diagnostics) and a Markdown/HTML table across runs."""
    from curbench_env.report import write_report

    files = write_report(run_dirs, out, judge_model=judge)
    console.print("wrote " + ", ".join(str(f) for f in files))


# The serving front doors (`curbench mcp`, `curbench view`) and `curbench sweep` register themselves on the same app.
from curbench_env import cli_serve, cli_sweep  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # `python -m curbench_env.cli`: run the module as imported, whose app has every command registered.
    from curbench_env.cli import main as _main

    _main()
