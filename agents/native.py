"""Native mode: the coding-agent CLI runs *inside* the episode's sandbox, its own shell is the workspace.

This is the paper's setup. ``curbench run --agent claude-code --native`` (or ``codex``) starts the
episode (world, run directory, sandbox) on the host, then starts the real CLI in a second bubblewrap
sandbox over the same workspace, pool and limits, with built-in tools on and ``submit``, ``status`` and
``finish`` on its PATH (the login PATH too: Codex runs commands with ``bash -lc``). What crosses the
sandbox wall, and nothing else:

- **the desk** (``$CURBENCH_DESK``, a Unix socket): ``submit``/``status``/``finish`` send one request;
  the harness runs it as the episode's own step (``EpisodeSession``: the same validation, audit,
  scoring and recording as ``step`` and the MCP tools), so ``inspect``, ``report`` and ``resume`` read
  native runs unchanged. The agent's other shell commands run in its own shell and are kept in its
  transcript (``agent/transcript.jsonl``), not as steps.
- **the model**: the sandbox has no network. The CLI talks to ``http://127.0.0.1:PORT`` inside, where
  ``model-bridge`` carries the bytes to a second Unix socket; outside, :class:`ModelProxy` forwards
  each request to the provider (or ``--agent-base-url``) and puts the real key on it. The key never
  enters the sandbox: the CLI holds a placeholder, the proxy drops whatever key it is sent.

When the episode ends (``finish``, or the iteration budget spent) the CLI gets ``grace_s`` to wrap up,
then it is stopped; so it is at the wall clock. Native mode needs the bwrap backend (the CLI must run
where the agent's commands run) and the provider key in the harness's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import IO, Any

from curbench_env.agents.cli_agents import PROMPT_NATIVE, claude_usage, codex_usage

from curbench_env.errors import CurbenchError
from curbench_env.pipeline import curbench_home
from curbench_env.session import EpisodeSession, ToolRefused
from curbench_env.workspace.base import SANDBOX_UID, SANDBOX_WORKSPACE, Mount, hand_over
from curbench_env.workspace.totals import workspace_bytes

#: Where the desk and model sockets appear inside the sandbox, and the agent's home.
SANDBOX_DESK = "/opt/curbench/desk"
SANDBOX_HOME = "/home/agent"
#: The port the model bridge listens on inside the sandbox (its own network namespace: no clash).
BRIDGE_PORT = 8787
#: Placeholder key the CLI inside holds (the proxy outside replaces it).
PLACEHOLDER_KEY = "curbench-proxy-adds-the-key"
#: Hop-by-hop headers a proxy must not forward; the credentials are replaced, not forwarded.
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "host", "content-length"}
_CREDENTIALS = {"x-api-key", "authorization", "api-key"}
#: The provider calls the proxy forwards, by method (the CLIs' model calls); anything else is refused,
#: so an agent cannot spend the key on other APIs (files, batches, fine-tuning, stored responses).
ALLOWED = {"POST": ("/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/chat/completions",
                    "/v1/complete"),
           "GET": ("/v1/models",)}
#: Tools the provider runs on its side (web search and fetch, code execution, remote MCP servers): they
#: would reach the internet from inside an isolated episode, so the proxy takes them out of a request.
HOSTED_TOOL_TYPES = ("web_search", "web_fetch", "code_execution", "code_interpreter", "mcp", "file_search",
                     "image_generation")
#: The most a forwarded request body may hold (bytes).
MAX_BODY_BYTES = 32 << 20
#: What a desk request may be (bytes): a path and a note.
MAX_DESK_REQUEST = 16_384

#: The CLIs native mode runs, with their provider's default endpoint (the keys: :func:`key_headers`).
PROVIDERS = {"claude-code": "https://api.anthropic.com", "codex": "https://api.openai.com"}


def key_headers(agent: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The credential headers the proxy adds for ``agent``, from the harness's environment; a clear
    error when there is no key (native mode cannot use a CLI's interactive login: it lives in the
    sandbox-less home)."""
    environ = os.environ if environ is None else environ
    if agent == "claude-code":
        if environ.get("ANTHROPIC_API_KEY"):
            return {"x-api-key": environ["ANTHROPIC_API_KEY"]}
        if environ.get("ANTHROPIC_AUTH_TOKEN"):
            return {"authorization": f"Bearer {environ['ANTHROPIC_AUTH_TOKEN']}"}
        raise CurbenchError("native mode needs ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) in the environment: "
                            "the proxy outside the sandbox adds it to the CLI's requests")
    if environ.get("OPENAI_API_KEY"):
        return {"authorization": f"Bearer {environ['OPENAI_API_KEY']}"}
    raise CurbenchError("native mode needs OPENAI_API_KEY in the environment: the proxy outside the sandbox "
                        "adds it to the CLI's requests")


def model_endpoint(path: str, method: str = "POST") -> bool:
    """Whether ``method path`` is a model call (:data:`ALLOWED`; ``GET /v1/models/ID`` too), with no dot
    segment, encoded or not, that a server could resolve to another API."""
    from urllib.parse import unquote

    decoded = unquote(path.split("?", 1)[0])
    if not decoded.startswith("/") or "\\" in decoded or any(s in (".", "..", ";") or ";" in s
                                                               for s in decoded.split("/")):
        return False
    allowed = ALLOWED.get(method, ())
    return decoded in allowed or (method == "GET" and decoded.startswith("/v1/models/") and decoded.count("/") == 3)


def without_hosted_tools(body: bytes) -> tuple[bytes, str | None]:
    """The request body with provider-side tools and remote MCP servers taken out, or a refusal (a
    background job, which would outlive the episode)."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return body, None
    if not isinstance(data, dict):
        return body, None
    if data.get("background"):
        return body, "background responses are not allowed (they outlive the episode)"
    changed = data.pop("mcp_servers", None) is not None
    tools = data.get("tools")
    if isinstance(tools, list):
        kept = [t for t in tools if not (isinstance(t, dict) and str(t.get("type", "")).startswith(HOSTED_TOOL_TYPES))]
        if len(kept) != len(tools):
            data["tools"], changed = kept, True
            if not kept:
                data.pop("tools")
                data.pop("tool_choice", None)
    return (json.dumps(data).encode() if changed else body), None


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A threaded server on a Unix socket the sandbox can connect to. ``finish_requests``: closing waits
    for the requests in progress (a submission being scored is recorded, not cut off)."""

    def __init__(self, path: Path, handler: type[socketserver.BaseRequestHandler], *,
                 finish_requests: bool = False) -> None:
        self.daemon_threads = not finish_requests
        self.block_on_close = finish_requests
        if path.exists() or path.is_symlink():
            path.unlink()
        super().__init__(str(path), handler)
        os.chmod(path, 0o600)  # its folder is handed to the sandbox's uid (NativeSandbox)
        self.thread = threading.Thread(target=self.serve_forever, name=f"curbench-{path.stem}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class ModelProxy:
    """An HTTP proxy on a Unix socket that forwards every request to ``upstream`` with the harness's
    credentials in place of the sandbox's, streaming the response back (SSE included)."""

    def __init__(self, path: Path, upstream: str, credentials: dict[str, str]) -> None:
        import httpx

        self.upstream = upstream.rstrip("/")
        self.credentials = credentials
        self.requests = 0
        self.refused = 0
        client = httpx.Client(timeout=httpx.Timeout(900.0, connect=30.0), follow_redirects=False)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 900  # a connection idle this long is dropped (a model reply can take minutes)

            def _forward(self) -> None:
                path = self.path.split("?", 1)[0]
                if not model_endpoint(self.path, self.command):
                    outer.refused += 1
                    self.close_connection = True  # the body is not read: the connection ends here
                    self._error(403, f"curbench model proxy: {self.command} {path} is not a model call")
                    return
                body = self._body()
                if body is None:
                    outer.refused += 1
                    self.close_connection = True
                    self._error(413, f"curbench model proxy: request bodies are limited to {MAX_BODY_BYTES} bytes")
                    return
                body, refusal = without_hosted_tools(body)
                if refusal:
                    outer.refused += 1
                    self._error(403, f"curbench model proxy: {refusal}")
                    return
                outer.requests += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | _CREDENTIALS}
                headers.update(outer.credentials)
                sent = False
                try:
                    with client.stream(self.command, outer.upstream + self.path, headers=headers, content=body) as r:
                        self.send_response(r.status_code)
                        for k, v in r.headers.multi_items():
                            if k.lower() not in _HOP and "\n" not in v and "\r" not in v:
                                self.send_header(k, v)
                        bodyless = r.status_code in (204, 304) or r.status_code < 200
                        if not bodyless:
                            self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        sent = True
                        if bodyless:
                            return
                        for chunk in r.iter_raw():
                            if chunk:
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                                self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                except httpx.HTTPError as exc:
                    if sent:  # the status line is out: end the connection, the client sees a cut stream
                        self.close_connection = True
                    else:
                        self._error(502, f"curbench model proxy: {outer.upstream} unreachable ({exc})")
                except OSError:  # the CLI went away
                    self.close_connection = True

            def _error(self, status: int, message: str) -> None:
                data = json.dumps({"type": "error", "error": {"type": "proxy_error", "message": message}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True

            def _body(self) -> bytes | None:
                """The request body, or None when it is (or claims to be) larger than MAX_BODY_BYTES."""
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts, total = [], 0
                    while True:
                        try:
                            size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                        except ValueError:
                            return None
                        if size <= 0:
                            break
                        total += size
                        if total > MAX_BODY_BYTES:
                            return None
                        parts.append(self.rfile.read(size))
                        self.rfile.readline(64)
                    self.rfile.readline(64)
                    return b"".join(parts)
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    return None
                if length < 0 or length > MAX_BODY_BYTES:
                    return None
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815

            def address_string(self) -> str:
                return "sandbox"

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _UnixServer(path, Handler)
        self._client = client

    def close(self) -> None:
        self.server.close()
        self._client.close()


def format_status(status: dict[str, Any]) -> str:
    """The episode's status as the `status` command prints it."""
    lines = [f"iteration {status.get('iteration')} · submissions left {status.get('budget_left')} · "
             f"best {status.get('best_score')} (iteration {status.get('best_iteration')}) · base "
             f"{status.get('base_score')} · last {status.get('last_score')}" + (" · the episode has ended"
                                                                                if status.get("ended") else "")]
    last = status.get("last_scored")
    if last:
        scores = " ".join(f"{k} {v:.1f}" for k, v in (last.get("scores") or {}).items())
        lines.append(f"last scored: iteration {last.get('iteration')} {last.get('file')} average "
                     f"{last.get('average')}: {scores}")
    lines += [f"{k}: {v}" for k, v in status.items() if k.startswith("rewrite")]
    return "\n".join(lines)


def _without_queue_line(text: str) -> str:
    """The step's output without the in-sandbox `submit`'s "queued" line (the desk already said it)."""
    return "\n".join(line for line in text.splitlines() if not (line.startswith("submit: ") and " queued; " in line)).strip()


class DeskServer:
    """``submit``/``status``/``finish`` from inside the sandbox, answered by the episode's session."""

    def __init__(self, path: Path, session: EpisodeSession) -> None:
        self.session = session
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 60  # a request is one short line; a connection that sends nothing is dropped

            def handle(self) -> None:
                try:
                    raw = self.rfile.readline(MAX_DESK_REQUEST)
                except OSError:  # timed out
                    return
                ok, text = outer.answer(raw)
                try:
                    self.wfile.write(json.dumps({"ok": ok, "text": text}).encode())
                except OSError:  # the agent stopped waiting; the step is recorded all the same
                    pass

        self.server = _UnixServer(path, Handler, finish_requests=True)

    def answer(self, raw: bytes) -> tuple[bool, str]:
        """One request (a JSON line) → (ok, the text the command prints)."""
        try:
            request = json.loads(raw)
            tool = request["tool"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return False, "malformed request; use the `submit`, `status` and `finish` programs"
        try:
            if tool == "submit":
                path, note = request.get("path"), request.get("note", "")
                if not isinstance(path, str) or not isinstance(note, str):
                    return False, "submit: PATH and the note must be text"
                return True, _without_queue_line(self.session.submit(path, note))
            if tool == "status":
                return True, format_status(self.session.status())
            if tool == "finish":
                return True, self.session.finish()
        except ToolRefused as exc:
            return False, _without_queue_line(str(exc))
        return False, f"unknown request {tool!r}; use the `submit`, `status` and `finish` programs"

    def close(self) -> None:
        self.server.close()


def _install_bin(bin_dir: Path, task_tools: Path | None) -> Path:
    """The sandbox's PATH folder for the agent: the task's tools, the model bridge, and the desk client
    under the names of the three commands it serves."""
    from curbench_env.workspace.tools import install_tools

    install_tools(bin_dir, task_tools, programs=("model-bridge",))
    desk = (resources.files("curbench_env.sandbox_bin") / "desk").read_bytes()
    for name in ("submit", "status", "finish"):
        (bin_dir / name).write_bytes(desk)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _install_root(real: Path) -> Path:
    """The installation folder of a program: its npm package (the nearest folder above it with a
    package.json), else the folder it is in."""
    for parent in real.parents:
        if (parent / "package.json").is_file():
            return parent
        if parent.name == "node_modules":
            break
    return real.parent


def _cli_mounts(exe: str, protected: list[Path]) -> list[Mount]:
    """Read-only mounts for the CLI and its ``node`` where the sandbox does not already show them (it
    sees /usr); refused when such a folder would also show ``protected`` places (the home, the worlds,
    the run directory)."""
    mounts: list[Mount] = []
    for prog in dict.fromkeys([exe, shutil.which("node")]):
        if prog is None:
            continue
        real = Path(os.path.realpath(prog))
        if real.parts[1:2] in (("usr",), ("bin",), ("lib",)):
            continue
        root = _install_root(real)
        shown = [p for p in protected if p == root or root in p.parents]
        if root == Path("/") or shown:
            raise CurbenchError(f"{prog} is installed in {root}, and mounting that in the sandbox would show "
                                f"{shown[0] if shown else '/'} to the agent: install the CLI where it is alone "
                                "(npm install -g with the system node puts it under /usr)")
        if not any(m.host == root for m in mounts):
            mounts.append(Mount(root, str(root)))
    return mounts


def cli_argv(agent: str, exe: str, model: str | None, prompt: str) -> list[str]:
    """The CLI's command line inside the sandbox (its own tools on, no permission prompts: the sandbox
    is the boundary)."""
    extra = ["--model", model] if model else []
    if agent == "claude-code":
        return [exe, "-p", prompt, "--output-format", "stream-json", "--verbose", "--strict-mcp-config",
                "--permission-mode", "bypassPermissions", *extra]
    return [exe, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", *extra,
            "--cd", SANDBOX_WORKSPACE, prompt]


def _agent_home(home: Path, agent: str, path_var: str, model: str | None) -> dict[str, str]:
    """Fill the agent's home (its login PATH, Codex's provider); the CLI's environment variables."""
    (home / ".profile").write_text(f"export PATH={shlex.quote(path_var)}\ncd {SANDBOX_WORKSPACE} 2>/dev/null\n")
    base = f"http://127.0.0.1:{BRIDGE_PORT}"
    env = {"HOME": SANDBOX_HOME, "CURBENCH_DESK": f"{SANDBOX_DESK}/desk.sock", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    if agent == "claude-code":
        env.update({"ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "IS_SANDBOX": "1",
                    "BASH_DEFAULT_TIMEOUT_MS": "1800000", "BASH_MAX_TIMEOUT_MS": "3600000"})
    else:
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        lines = [*([f"model = {json.dumps(model)}"] if model else []), 'model_provider = "curbench"',
                 'approval_policy = "never"', 'sandbox_mode = "danger-full-access"', "",
                 "[model_providers.curbench]", 'name = "curbench"', f'base_url = "{base}/v1"',
                 'wire_api = "responses"', 'env_key = "OPENAI_API_KEY"']
        (codex_home / "config.toml").write_text("\n".join(lines) + "\n")
        env.update({"CODEX_HOME": f"{SANDBOX_HOME}/.codex", "OPENAI_API_KEY": PLACEHOLDER_KEY})
    return env


class NativeSandbox:
    """The plumbing of native mode around a started episode (a context manager): the desk and model
    sockets, the agent's PATH folder and home, and :meth:`spawn`, which starts a command in a second
    sandbox over the episode's workspace with the model bridge up."""

    def __init__(self, agent: str, session: EpisodeSession, *, model: str | None = None,
                 base_url: str | None = None, credentials: dict[str, str]) -> None:
        if agent not in PROVIDERS:
            raise CurbenchError(f"native mode runs claude-code or codex, not {agent!r}")
        workspace = getattr(session.env.unwrapped, "workspace", None)
        if workspace is None or not hasattr(workspace, "spawn"):
            raise CurbenchError("native mode needs the bwrap backend (the CLI runs where the agent's commands run); "
                                f"this episode uses {getattr(workspace, 'name', 'no workspace')!r}")
        self.agent, self.session, self.workspace, self.model = agent, session, workspace, model
        self.upstream = base_url or PROVIDERS[agent]
        self.credentials = credentials
        self.extra_mounts: list[Mount] = []

    def __enter__(self) -> NativeSandbox:
        self._stack = contextlib.ExitStack()
        try:
            self.scratch = Path(tempfile.mkdtemp(prefix="curbench-native-"))
            self._stack.callback(shutil.rmtree, self.scratch, ignore_errors=True)
            desk_dir, self.home = self.scratch / "desk", self.scratch / "home"
            desk_dir.mkdir(mode=0o700)
            self.home.mkdir(mode=0o700)
            os.chmod(self.scratch, 0o755)
            self.desk = DeskServer(desk_dir / "desk.sock", self.session)
            self._stack.callback(self.desk.close)
            self.proxy = ModelProxy(desk_dir / "model.sock", self.upstream, self.credentials)
            self._stack.callback(self.proxy.close)
            self.bin_dir = _install_bin(self.scratch / "bin", self.session.env.unwrapped.task.tools_dir())
            self.env = _agent_home(self.home, self.agent, self.workspace.environment()["PATH"], self.model)
            if os.geteuid() == 0:  # the sandbox's uid, and no other user of this machine, reaches the sockets
                hand_over(self.home, SANDBOX_UID)
                hand_over(desk_dir, SANDBOX_UID)
            self.mounts = [Mount(desk_dir, SANDBOX_DESK), Mount(self.home, SANDBOX_HOME, read_only=False)]
        except BaseException:
            self._stack.close()
            raise
        return self

    def over_quota(self) -> str | None:
        """Why the agent must be stopped for its disk use (the workspace or its home past the
        workspace quota), or None. The step shell checks the quota per command; a native agent's
        commands are its own, so the supervisor checks between them."""
        quota = self.workspace.spec.limits.workspace_bytes
        for where, folder in (("workspace", self.workspace.spec.host_dir), ("agent's home", self.home)):
            if workspace_bytes(folder, quota) > quota:
                return f"the {where} passed the disk quota of {quota / 1e9:.2f} GB"
        return None

    def spawn(self, argv: list[str], *, stdout: IO[bytes] | int | None = None,
              stderr: IO[bytes] | int | None = None) -> subprocess.Popen:
        """Start ``argv`` in the agent's sandbox (its own process group) once the model bridge listens."""
        wait_bridge = (f"for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{BRIDGE_PORT}) 2>/dev/null && break; "
                       "sleep 0.05; done; ")
        command = ["bash", "-c", f"model-bridge {BRIDGE_PORT} {SANDBOX_DESK}/model.sock >/dev/null 2>&1 & "
                   f"{wait_bridge}exec \"$@\"", "curbench-agent", *argv]
        return self.workspace.spawn(command, bin_dir=self.bin_dir, mounts=self.mounts + self.extra_mounts,
                                    env=self.env, stdout=stdout, stderr=stderr)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def run_native(agent: str, session: EpisodeSession, run_dir: Path, *, model: str | None = None,
               base_url: str | None = None, wall_clock_s: float = 7200.0, grace_s: float = 120.0,
               environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``agent`` (``claude-code`` or ``codex``) inside the started episode's sandbox until it exits,
    the episode ends (plus ``grace_s``) or the wall clock; returns its usage (also in usage.json)."""
    binary, package = ("claude", "@anthropic-ai/claude-code") if agent == "claude-code" else ("codex", "@openai/codex")
    exe = shutil.which(binary)
    if exe is None:
        raise CurbenchError(f"the `{binary}` CLI is not installed: npm install -g {package}")
    t0 = time.monotonic()
    transcript = run_dir / "agent" / "transcript.jsonl"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen | None = None
    sandbox = NativeSandbox(agent, session, model=model, base_url=base_url, credentials=key_headers(agent, environ))
    sandbox.extra_mounts = _cli_mounts(exe, [Path.home().resolve(), curbench_home().resolve(), run_dir.resolve()])
    stopped: list[str] = []
    with sandbox, open(transcript, "wb") as out, open(transcript.with_suffix(".stderr.log"), "wb") as err:
        try:
            proc = sandbox.spawn(cli_argv(agent, exe, model, PROMPT_NATIVE + "\n\n" + session.brief), stdout=out,
                                 stderr=err)
            code = _supervise(proc, session, t0 + wall_clock_s, grace_s, sandbox.over_quota, stopped)
        finally:
            if proc is not None and proc.poll() is None:
                _kill(proc)
    usage = claude_usage(transcript) if agent == "claude-code" else codex_usage(transcript)
    usage.update({"agent": agent, "mode": "native", "model": model, "exit_code": code,
                  "model_requests": sandbox.proxy.requests, "refused_requests": sandbox.proxy.refused,
                  "stopped": stopped[0] if stopped else None,
                  "elapsed_s": round(time.monotonic() - t0, 1)})
    if (run_dir / "config.json").exists():
        (run_dir / "usage.json").write_text(json.dumps(usage, indent=2))
    return usage


def _supervise(proc: subprocess.Popen, session: EpisodeSession, deadline: float, grace_s: float,
               over_quota: Callable[[], str | None], stopped: list[str]) -> int:
    """Wait for the CLI; stop it ``grace_s`` after the episode ends, at ``deadline``, or when its disk
    use passes the quota (checked every few seconds; the reason goes into ``stopped``). Its exit code
    (-9 when stopped)."""
    ended_at: float | None = None
    checked = 0.0
    while proc.poll() is None:
        now = time.monotonic()
        if session.ended and ended_at is None:
            ended_at = now
        reason = None
        if now - checked >= 5.0:
            checked, reason = now, over_quota()
        if reason or now >= deadline or (ended_at is not None and now - ended_at >= grace_s):
            stopped.append(reason or ("the wall clock" if now >= deadline else "the episode ended"))
            _kill(proc)
            return -9
        time.sleep(0.5)
    return int(proc.returncode)


def _kill(proc: subprocess.Popen) -> None:
    """Stop the sandbox (bwrap's pid namespace takes everything in it along)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


__all__ = ["DeskServer", "ModelProxy", "NativeSandbox", "run_native", "key_headers", "format_status", "cli_argv", "model_endpoint"]
