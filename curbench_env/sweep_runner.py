"""Run a sweep's sessions as Ray tasks, with live progress (sessions done/running/failed, best score
so far per cell). Local Ray by default (``ray.init`` on this machine); ``address`` joins a cluster."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from curbench_env.errors import CurbenchError
from curbench_env.sweep import (
    Session,
    SweepSpec,
    execute_session,
    is_api_agent,
    passed_env,
    run_dir_of,
    session_state,
    write_manifest,
)

#: Object store for a local Ray: sessions pass only small dicts, so the minimum Ray accepts is plenty.
LOCAL_OBJECT_STORE_BYTES = 80 * 1024 * 1024


def init_ray(address: str | None, num_cpus: int | None = None) -> dict[str, float]:
    """Start a local Ray (explicit CPUs, no dashboard) or connect to ``address``; returns its resources."""
    try:
        import ray
    except ImportError:
        raise CurbenchError("sweeps run on Ray: pip install -e '.[sweep]' (ray[default])") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, **kwargs)
        except ConnectionError as exc:
            raise CurbenchError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return dict(ray.cluster_resources())


def choose_concurrency(spec: SweepSpec, resources: dict[str, float], requested: int | None) -> int:
    """Sessions at once: what the cluster's CPUs (and GPUs, when sessions need them) hold, or ``requested``."""
    fit = int(resources.get("CPU", 1) // spec.cpus)
    if spec.gpus:
        gpus = resources.get("GPU", 0)
        if gpus < spec.gpus:
            raise CurbenchError(f"the sweep asks for {spec.gpus:g} GPU(s) per session; the Ray cluster has {gpus:g}")
        fit = min(fit, int(gpus // spec.gpus))
    if fit < 1:
        raise CurbenchError(f"the sweep asks for {spec.cpus:g} CPUs per session; the Ray cluster has "
                            f"{resources.get('CPU', 0):g}")
    return max(1, min(fit, requested)) if requested else fit


@dataclass
class SweepProgress:
    """What the driver knows of each session, and the live view of it."""

    spec: SweepSpec
    sweep_dir: Path
    concurrency: int
    status: dict[str, str] = field(default_factory=dict)  # name -> queued/running/finished/failed/skipped
    errors: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("skipped", "finished", "running", "failed", "queued")}
        for v in self.status.values():
            out[v] += 1
        return out

    def headline(self) -> str:
        c = self.counts()
        elapsed = int(time.monotonic() - self.started)
        earlier = f" ({c['skipped']} before this run)" if c["skipped"] else ""
        return (f"sweep {self.spec.name} · {len(self.status)} sessions: {c['finished'] + c['skipped']} done{earlier}"
                f" · {c['running']} running · {c['failed']} failed · {c['queued']} queued · concurrency "
                f"{self.concurrency} · {elapsed // 60}m{elapsed % 60:02d}s")

    def table(self) -> Table:
        cells: dict[tuple, list[Session]] = {}
        for s in self.spec.sessions:
            cells.setdefault(s.cell, []).append(s)
        many_envs = len({s.env for s in self.spec.sessions}) > 1
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col, just in (("cell", "left"), ("done", "right"), ("running", "left"), ("failed", "right"),
                          ("best so far", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for (env, agent, scaffold, budget, task), members in cells.items():
            label = " / ".join([*([env.removeprefix("Curation-")] if many_envs else []), agent, scaffold,
                                f"{budget} it", *([task] if task else [])])
            done = sum(self.status.get(s.name) in ("finished", "skipped") for s in members)
            running = [s for s in members if self.status.get(s.name) == "running"]
            best, where = None, ""
            for s in members:
                for m in _manifests(run_dir_of(self.sweep_dir, s)):
                    if best is None or m["average"] > best:
                        best, where = m["average"], f"s{s.seed} it{m['iteration']}"
            run_text = ", ".join(f"s{s.seed} it{_iteration(run_dir_of(self.sweep_dir, s))}/{budget}" for s in running)
            failed = sum(self.status.get(s.name) == "failed" for s in members)
            table.add_row(escape(label), f"{done}/{len(members)}", run_text or "-",
                          f"[red]{failed}[/]" if failed else "0", f"{best:.2f} ({where})" if best is not None else "-")
        return table

    def render(self) -> Group:
        return Group(Text(self.headline(), style="bold"), self.table())


def _manifests(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for m in sorted((run_dir / "iterations").glob("[0-9]*/manifest.json")):
        try:
            out.append(json.loads(m.read_text()))
        except ValueError:
            continue  # being written
    return out


def _iteration(run_dir: Path) -> int:
    return max((int(m["iteration"]) for m in _manifests(run_dir)), default=0)


def run_sweep(spec: SweepSpec, sweep_dir: Path, *, console: Console, address: str | None = None,
              concurrency: int | None = None, poll_s: float = 2.0) -> SweepProgress:
    """Run every unfinished session of ``spec`` under ``sweep_dir``; returns the final progress."""
    import ray

    sweep_dir = Path(sweep_dir).resolve()
    write_manifest(spec, sweep_dir)
    resources = init_ray(address, num_cpus=None)
    limit = choose_concurrency(spec, resources, concurrency)
    progress = SweepProgress(spec, sweep_dir, limit)
    queue: list[Session] = []
    for s in spec.sessions:
        if session_state(sweep_dir, s) == "finished":
            progress.status[s.name] = "skipped"
        else:
            progress.status[s.name] = "queued"
            queue.append(s)
    task = ray.remote(execute_session).options(num_cpus=spec.cpus, num_gpus=spec.gpus, max_retries=spec.max_retries,
                                               retry_exceptions=True)
    env_vars = passed_env()
    in_flight: dict[Any, Session] = {}
    where = f"Ray at {address}" if address else f"local Ray ({resources.get('CPU', 0):g} CPUs)"
    console.print(f"[bold]sweep {escape(spec.name)}[/]: {len(spec.sessions)} sessions "
                  f"({len(queue)} to run) on {where}, {limit} at a time · {sweep_dir}")

    def launch() -> None:
        api_busy = sum(is_api_agent(s.agent) for s in in_flight.values())
        for s in list(queue):
            if len(in_flight) >= limit:
                return
            if is_api_agent(s.agent) and api_busy >= spec.api_concurrency:
                continue
            action = "resume" if session_state(sweep_dir, s) == "interrupted" else "run"
            queue.remove(s)
            in_flight[task.remote(s.to_dict(), str(sweep_dir), env_vars)] = s
            api_busy += is_api_agent(s.agent)
            progress.status[s.name] = "running"
            console.print(f"[cyan]▶[/] {escape(s.name)} ({action})")

    live = Live(progress.render(), console=console, refresh_per_second=1, transient=False,
                auto_refresh=console.is_terminal)
    try:
        with live:
            launch()
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_s)
                for ref in ready:
                    s = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the task's own error after its retries, or a lost worker
                        progress.status[s.name] = "failed"
                        cause = getattr(exc, "cause", None) or exc
                        progress.errors[s.name] = str(cause).strip().splitlines()[-1] if str(cause).strip() else repr(cause)
                        console.print(f"[red]✗[/] {escape(progress.errors[s.name])}")
                    else:
                        progress.status[s.name] = "finished"
                        console.print(f"[green]✓[/] {escape(s.name)}: {_finish_line(run_dir_of(sweep_dir, s), result)}")
                launch()
                if console.is_terminal:
                    live.update(progress.render())
            live.update(progress.render())
        if not console.is_terminal:
            console.print()  # the last frame is printed without a line end
    except KeyboardInterrupt:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        raise
    return progress


def _finish_line(run_dir: Path, result: dict[str, Any]) -> str:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return f"ended ({result.get('action')}, {result.get('wall_s', 0):.0f}s)"
    return (f"best {summary['best_score']:.2f} (base {summary['base_score']:.2f}) in {summary['iterations']} "
            f"iterations · {result.get('action')} · {result.get('wall_s', 0):.0f}s")
