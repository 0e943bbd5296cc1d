"""Workspace backends: persistence, limits, and attacks that must fail cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curbench_env.config import SandboxLimits
from curbench_env.errors import WorkspaceError
from curbench_env.workspace import WorkspaceSpec, make_workspace
from curbench_env.workspace.base import bwrap_available

LIMITS = SandboxLimits(command_timeout_s=3, output_cap_bytes=20_000, file_size_bytes=64 << 20)
BACKENDS = ["local", pytest.param("bwrap", marks=pytest.mark.skipif(not bwrap_available(), reason="bwrap not installed"))]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "harness" / "hidden_eval.json"
    p.parent.mkdir()
    p.write_text("TOPSECRET")
    p.chmod(0o600)
    return p


@pytest.fixture(params=BACKENDS)
def ws(request, tmp_path: Path):
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "data.txt").write_text("pooldata\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    spec = WorkspaceSpec(host_dir=tmp_path / "ws", pool_dir=pool, bin_dir=bin_dir, limits=LIMITS)
    kwargs = {"warn": False} if request.param == "local" else {}
    w = make_workspace(request.param, spec, **kwargs)
    w.start()
    yield w
    w.close()


def test_shell_keeps_cwd_and_environment(ws):
    ws.run("mkdir -p sub && cd sub && export FOO=bar")
    out = ws.run("pwd; echo $FOO").output.split()
    assert out[0].endswith("/sub") and out[1] == "bar"


def test_exit_code_and_stderr_are_reported(ws):
    r = ws.run("echo oops >&2; exit_code() { return 3; }; exit_code")
    assert r.exit_code == 3 and "oops" in r.output


def test_syntax_error_does_not_break_the_shell(ws):
    assert ws.run("echo 'unbalanced").exit_code != 0
    assert ws.run("echo fine").output.strip() == "fine"


def test_pool_is_readable_but_read_only(ws):
    assert "pooldata" in ws.run(f"cat {ws.pool_path}/data.txt").output
    if ws.name != "local" or os.geteuid() != 0:
        assert ws.run(f"touch {ws.pool_path}/x").exit_code != 0


def test_sleep_past_the_limit_is_killed(ws):
    r = ws.run("sleep 60", timeout_s=1)
    assert r.timed_out and r.exit_code == 124 and "timed out" in r.output
    assert ws.run("echo alive").output.strip() == "alive"


def test_endless_output_is_capped_and_killed(ws):
    r = ws.run("yes")
    assert r.truncated and "[output truncated" in r.output and len(r.output) < 30_000
    assert ws.run("echo alive").output.strip() == "alive"


def test_big_file_write_hits_the_file_size_limit(ws):
    r = ws.run("head -c 200000000 /dev/zero > big.bin; ls -l big.bin")
    assert "File size limit exceeded" in r.output
    size = int(ws.run("stat -c %s big.bin").output.split()[0])
    assert size <= LIMITS.file_size_bytes
    ws.run("rm -f big.bin")


def test_exit_restarts_the_shell_in_the_same_directory(ws):
    ws.run("mkdir -p d && cd d")
    r = ws.run("exit 3")
    assert r.shell_restarted and "new shell" in r.output
    assert ws.run("pwd").output.strip().endswith("/d")


def test_builtin_infinite_loop_is_recovered(ws):
    r = ws.run("while true; do :; done", timeout_s=1)
    assert r.timed_out
    assert ws.run("echo alive").output.strip() == "alive"


SANDBOXES = [pytest.param("bwrap", marks=pytest.mark.skipif(not bwrap_available(), reason="bwrap not installed")),
             "docker"]


def sandbox_workspace(request, tmp_path: Path, limits: SandboxLimits = LIMITS, name: str = "ws"):
    """A started workspace of the backend ``request.param`` (docker: on the private test daemon)."""
    bin_dir = tmp_path / f"{name}-bin"
    bin_dir.mkdir()
    kwargs, image = {}, "python:3.11-slim"
    if request.param == "docker":
        client, image = request.getfixturevalue("docker_daemon")
        kwargs = {"client": client}
    spec = WorkspaceSpec(host_dir=tmp_path / name, pool_dir=None, bin_dir=bin_dir, limits=limits, docker_image=image)
    w = make_workspace(request.param, spec, **kwargs)
    w.start()
    return w


class TestSandboxIsolation:
    """The same attacks against each real sandbox: bubblewrap, and Docker on a real daemon."""

    @pytest.fixture(params=SANDBOXES)
    def bw(self, request, tmp_path: Path):
        w = sandbox_workspace(request, tmp_path)
        yield w
        w.close()

    def test_fork_bomb_is_contained(self, bw):
        bw.run("f(){ f|f & }; f", timeout_s=2)
        # The shell answers at once; a straggler forked during the kill is stopped a step later.
        assert "alive" in bw.run("echo alive").output.splitlines()
        bw.run("true")
        assert int(bw.run("ps -e --no-headers | wc -l").output.split()[0]) < 10

    def test_setsid_escape_does_not_outlive_the_command(self, bw):
        r = bw.run("setsid sleep 1000 & echo started")
        assert "stopped 1 background" in r.output
        bw.run("true")  # bash reports the killed job once
        assert "sleep 1000" not in bw.run("ps -e -o args=").output

    def test_hidden_harness_data_is_not_reachable(self, bw, secret):
        r = bw.run(f"cat {secret}; ls {secret.parent}")
        assert "TOPSECRET" not in r.output and r.exit_code != 0

    def test_harness_environment_does_not_leak_through_proc(self, bw, monkeypatch):
        r = bw.run("cat /proc/1/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
        assert "CURBENCH_HOME" not in r.output and "API_KEY" not in r.output

    def test_no_network(self, bw):
        r = bw.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)\"")
        assert r.exit_code != 0 and "unreachable" in r.output.lower()

    @pytest.mark.parametrize("backend", SANDBOXES)
    def test_memory_limit(self, request, tmp_path, backend):
        request.param = backend
        w = sandbox_workspace(request, tmp_path, SandboxLimits(memory_bytes=1 << 30), name="ws2")
        with w:
            r = w.run("python3 -c 'b = bytearray(2 << 30); b[::4096] = b\"x\" * len(b[::4096])'")
        assert "MemoryError" in r.output or "Killed" in r.output

    def test_no_user_namespaces_inside(self, bw):
        assert "rc=0" not in bw.run("unshare -Ur id -u; echo rc=$?").output

    @pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when the harness runs as root")
    def test_commands_do_not_run_as_root(self, bw):
        assert bw.run("id -u").output.strip() == "65534"
        assert "Permission denied" in bw.run("cat /etc/shadow").output or bw.run("ls /etc/shadow").exit_code


def test_paths_outside_the_workspace_are_refused(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    spec = WorkspaceSpec(host_dir=tmp_path / "ws", pool_dir=None, bin_dir=bin_dir)
    w = make_workspace("local", spec, warn=False)
    (tmp_path / "ws" / "ok.txt").write_text("x")
    assert w.to_host("ok.txt") == (tmp_path / "ws" / "ok.txt").resolve()
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        w.to_host("/etc/passwd")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        w.to_host("../../etc/passwd")
    os.symlink("/etc/passwd", tmp_path / "ws" / "link.txt")
    with pytest.raises(WorkspaceError, match="symlink"):
        w.to_host("link.txt")


def test_docker_backend_asks_for_the_isolation_settings(tmp_path):
    """The container's isolation settings as the SDK receives them (runs without a daemon); the
    real daemon's behaviour is tested by the sandbox tests above."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pool = tmp_path / "pool"
    pool.mkdir()
    spec = WorkspaceSpec(host_dir=tmp_path / "ws", pool_dir=pool, bin_dir=bin_dir, limits=LIMITS)
    kw = make_workspace("docker", spec, client=object()).container_kwargs()
    assert kw["network_mode"] == "none" and kw["network_disabled"]
    assert kw["pids_limit"] == LIMITS.max_processes and kw["mem_limit"] == LIMITS.memory_bytes
    assert kw["volumes"][str(pool.resolve())] == {"bind": "/pool", "mode": "ro"}
    assert kw["volumes"][str((tmp_path / "ws").resolve())]["mode"] == "rw"
    assert {u["Name"] for u in kw["ulimits"]} >= {"fsize"}


def test_docker_backend_keeps_cwd_and_variables_and_recovers_from_a_timeout(docker_daemon, tmp_path):
    client, image = docker_daemon
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    spec = WorkspaceSpec(host_dir=tmp_path / "ws", pool_dir=None, bin_dir=bin_dir, limits=LIMITS, docker_image=image)
    with make_workspace("docker", spec, client=client) as w:
        w.run("cd /tmp && export FOO=bar")
        assert w.run("pwd; echo $FOO").output.split() == ["/tmp", "bar"]
        assert w.run("sleep 60", timeout_s=1).timed_out
        assert w.run("echo alive").output.strip() == "alive"
        w.run("exit 3")  # the shell dies: a new one starts and nothing the old one left runs on
        assert w.run("echo back").output.strip() == "back"


def test_an_episode_runs_in_the_docker_backend(docker_daemon, make_env):
    client, image = docker_daemon
    env = make_env(backend="docker", docker_image=image, workspace_kwargs={"client": client})
    env.reset(seed=0)
    obs, *_ = env.step("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
                       "open('p.txt','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good'][:6]))\" "
                       "&& submit p.txt --note docker")
    assert "iteration 1/" in obs["output"], obs["output"]
    assert env.unwrapped.state.iteration == 1


def test_unknown_backend_is_a_clear_error(tmp_path):
    spec = WorkspaceSpec(host_dir=tmp_path / "ws", pool_dir=None, bin_dir=tmp_path)
    with pytest.raises(WorkspaceError, match="unknown workspace backend"):
        make_workspace("vm", spec)


def test_local_backend_finds_the_tools_and_the_packages_from_a_relative_run_dir(tmp_path, monkeypatch):
    """A relative run directory (the default `runs/...`) and a virtual environment's python:
    the shell runs inside the workspace, so both must reach it as absolute paths."""
    import sys

    monkeypatch.chdir(tmp_path)
    Path("run/.bin").mkdir(parents=True)
    tool = Path("run/.bin/pool-hello")
    tool.write_text("#!/bin/sh\necho hello from the tools\n")
    tool.chmod(0o755)
    spec = WorkspaceSpec(host_dir=Path("run/ws"), pool_dir=None, bin_dir=Path("run/.bin"), limits=LIMITS)
    w = make_workspace("local", spec, warn=False)
    w.start()
    try:
        assert w.run("pool-hello").output.strip() == "hello from the tools"
        out = w.run("python3 -c 'import sys, numpy; print(sys.prefix)'")
        assert out.exit_code == 0, out.output
        assert out.output.strip() == sys.prefix  # this interpreter's environment, not the base one
    finally:
        w.close()
