"""The CLI's serving front doors: `curbench mcp` (an episode for a coding agent), the coding-agent
launcher behind `curbench run --agent claude-code|codex`, and `curbench view` (runs in a browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from curbench_env.cli import (
    BackendOpt,
    EnvOpt,
    PresetOpt,
    SeedOpt,
    TaskArgOpt,
    _make_env,
    _print_iterations,
    app,
    console,
    task_kwargs,
)
from curbench_env.errors import CurbenchError


def run_cli_agent(env: str, agent: str, seed: int, backend: str, run_dir: Path | None, iterations: int | None,
                   scaffolds: list[str] | None, task_args: list[str], base_url: str | None, wall_clock: float) -> None:
    """A coding-agent CLI drives the episode through `curbench mcp` (see curbench_env.agents.cli_agents)."""
    from curbench_env.agents.cli_agents import CLIAgentRun, launch, server_command
    from curbench_env.registry import env_entry
    from curbench_env.trajectory import default_run_dir

    env_entry(env)  # an unknown id is one clear line before anything starts
    target = run_dir or default_run_dir(env, seed)
    args = server_command(env, target, seed=seed, agent=agent, backend=backend, iterations=iterations,
                          scaffolds=scaffolds, task_args=task_args)
    console.print(f"[bold]{env}[/] · agent {escape(agent)} · seed {seed} · the agent drives the episode through "
                  f"`curbench mcp` (transcript in {target / 'agent'})")
    usage = launch(agent, CLIAgentRun(run_dir=target, server_args=args, base_url=base_url, wall_clock_s=wall_clock))
    if not (target / "config.json").exists():
        raise CurbenchError(f"{agent} ended without starting the episode (exit {usage['exit_code']}); "
                            f"see {target / 'agent' / 'transcript.stderr.log'}")
    _print_iterations(target)
    tokens = (f"{usage['turns']} turns, {usage['prompt_tokens']} prompt / {usage['completion_tokens']} completion "
              "tokens, " if usage.get("prompt_tokens") is not None else "")
    console.print(f"{escape(agent)}: {tokens}{usage['elapsed_s']}s · run directory: [bold]{target}[/]")


def run_native_agent(env: str, agent: str, seed: int, backend: str, run_dir: Path | None, iterations: int | None,
                     scaffolds: list[str] | None, task_options: dict[str, Any], base_url: str | None,
                     wall_clock: float) -> None:
    """A coding-agent CLI inside the episode's sandbox (see curbench_env.agents.native)."""
    from curbench_env.agents.native import PROVIDERS, key_headers, run_native
    from curbench_env.mcp_server import EpisodeSession

    name, _, model = agent.partition(":")
    if name not in PROVIDERS:
        raise CurbenchError(f"--native runs claude-code[:MODEL] or codex[:MODEL], not {agent!r}")
    key_headers(name)  # no key: one clear line before the world is built
    if backend not in ("auto", "bwrap"):
        raise CurbenchError(f"--native needs the bwrap backend (the CLI runs where the agent's commands run), "
                            f"not {backend!r}")
    e = _make_env(env, "bwrap", run_dir, iterations, scaffolds, task_options)
    session = EpisodeSession(e, seed=seed, agent=f"{agent} --native")
    try:
        with console.status(f"preparing {env} (first use builds the world) ..."):
            session.start()
        target = Path(e.unwrapped.run_dir)
        console.print(f"[bold]{env}[/] · agent {escape(agent)} (native: inside the sandbox) · seed {seed} · "
                      f"transcript in {target / 'agent'}")
        usage = run_native(name, session, target, model=model or None, base_url=base_url, wall_clock_s=wall_clock)
    finally:
        session.close()
    _print_iterations(target)
    console.print(f"{escape(agent)}: {usage['turns']} turns, {usage['prompt_tokens']} prompt / "
                  f"{usage['completion_tokens']} completion tokens, {usage['model_requests']} model requests, "
                  f"{usage['elapsed_s']}s · run directory: [bold]{target}[/]")


@app.command("mcp")
def mcp_serve(
    env: EnvOpt = "Curation-MiniVQA-v0",
    seed: SeedOpt = 0,
    backend: BackendOpt = "auto",
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/<env>-<time>-s<seed>).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iteration budget (default 10).")] = None,
    scaffold: Annotated[list[str] | None, typer.Option(help="Scaffold wrapper(s) to apply.")] = None,
    agent: Annotated[str | None, typer.Option(help="Name of the agent, recorded in the run directory.")] = None,
    http: Annotated[int | None, typer.Option(help="Serve streamable HTTP on 127.0.0.1:PORT instead of stdio.")] = None,
    task_preset: PresetOpt = None,
    task_args: TaskArgOpt = None,
) -> None:
    """Serve one episode as MCP tools (bash, submit, status, finish) for a coding agent, over stdio or HTTP."""
    from curbench_env.mcp_server import EpisodeSession, build_server

    e = _make_env(env, backend, run_dir, iterations, scaffold, task_kwargs(task_preset, task_args))
    session = EpisodeSession(e, seed=seed, agent=agent or ("mcp-http" if http else "mcp-stdio"))
    try:
        session.start_in_background()  # the handshake is answered while the world loads
        server = build_server(session)
        if http is not None:
            server.run("streamable-http", host="127.0.0.1", port=http)
        else:
            server.run("stdio")
    finally:
        e.close()


@app.command()
def view(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories, or folders (sweeps) holding them.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    export: Annotated[Path | None, typer.Option(help="Write the page and its data to this folder instead.")] = None,
) -> None:
    """A web page of runs: timeline, iterations, policy diffs, diagnostics; live while a run goes on."""
    from curbench_env.viewer import export as export_page
    from curbench_env.viewer import find_runs, serve

    runs = find_runs(run_dirs)
    if not runs:
        raise ValueError("no run directories found in " + ", ".join(str(p) for p in run_dirs))
    if export is not None:
        export_page(runs, export)
        console.print(f"wrote {len(runs)} run(s) to {export}; open {export / 'index.html'} in a browser")
        return
    def ready(_server: Any) -> None:
        console.print(f"serving {len(runs)} run(s) on [bold]http://127.0.0.1:{port}/[/] (Ctrl-C to stop)")

    try:
        serve(runs, port, ready=ready)
    except OSError as exc:
        raise ValueError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); choose another --port") from None


@app.command("serve")
def serve_openenv(
    openenv: Annotated[bool, typer.Option("--openenv", help="Serve the OpenEnv protocol (HTTP + WebSocket sessions).")] = False,
    env: EnvOpt = "Curation-MiniVQA-v0",
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    max_sessions: Annotated[int, typer.Option(help="Concurrent episodes (WebSocket sessions).")] = 8,
    session_timeout: Annotated[float, typer.Option(help="Seconds before an idle session is closed.")] = 3600.0,
    iterations: Annotated[int | None, typer.Option(help="Iteration budget per episode (default 10).")] = None,
    scaffold: Annotated[list[str] | None, typer.Option(help="Scaffold wrapper(s) to apply.")] = None,
    backend: BackendOpt = "auto",
    run_root: Annotated[Path | None, typer.Option(help="Where episodes' run directories go (default ./runs).")] = None,
    task_preset: PresetOpt = None,
    task_args: TaskArgOpt = None,
) -> None:
    """Serve episodes to trainers: `--openenv` speaks OpenEnv (each WebSocket session is one episode).
    For coding agents over MCP, see `curbench mcp`."""
    if not openenv:
        raise ValueError("choose a protocol: `curbench serve --openenv` (for MCP clients, `curbench mcp`)")
    try:
        from curbench_env.integrations.openenv import create_openenv_app
        from curbench_env.integrations.openenv import serve as run_server
    except ImportError as exc:
        raise CurbenchError(f"the OpenEnv server needs `pip install -e '.[train]'` ({exc})") from None
    from curbench_env.registry import env_entry

    env_entry(env)
    options = task_kwargs(task_preset, task_args)
    console.print(f"preparing {env} (the world is built once, on first use) ...")

    def app_factory() -> Any:
        app_ = create_openenv_app(env, task_args=options, scaffolds=scaffold or (), iteration_budget=iterations,
                                  backend=backend, run_root=str(run_root) if run_root else None,
                                  max_sessions=max_sessions, session_timeout_s=session_timeout)
        console.print(f"OpenEnv server for [bold]{env}[/] on http://{host}:{port} (WebSocket sessions at /ws, "
                      f"up to {max_sessions} at once; Ctrl-C to stop)")
        return app_

    run_server(app_factory, host, port)
