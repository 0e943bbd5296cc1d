"""The cost of an MCP tool call over a plain `step`: 200 `true` commands each way, one episode of the
tiny test task, the MCP SDK's client in process and over stdio would add transport on top.

Run by hand: python benchmarks/mcp_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

N = 200


def main() -> None:
    import mcp
    from tinytask import TinyTask

    from curbench_env import CurationEnv
    from curbench_env.mcp_server import EpisodeSession, build_server

    tmp = Path(tempfile.mkdtemp(prefix="mcp-overhead-"))
    env = CurationEnv(TinyTask(str(tmp / "task")), backend="local", workspace_kwargs={"warn": False},
                      run_root=tmp / "runs", max_steps=10 * N)
    session = EpisodeSession(env)
    session.start()
    steps = []
    for _ in range(N):
        t0 = time.perf_counter()
        env.step("true")
        steps.append(time.perf_counter() - t0)
    server = build_server(session)

    async def calls() -> list[float]:
        out = []
        async with mcp.Client(server) as client:
            for _ in range(N):
                t0 = time.perf_counter()
                await client.call_tool("bash", {"command": "true"})
                out.append(time.perf_counter() - t0)
        return out

    tools = anyio.run(calls)
    env.close()
    s, t = statistics.median(steps) * 1e3, statistics.median(tools) * 1e3
    print(f"median over {N}: env.step {s:.2f} ms, MCP bash tool (in-process client) {t:.2f} ms, ratio {t / s:.2f}")


if __name__ == "__main__":
    main()
