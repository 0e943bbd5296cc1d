"""`curbench view`: a local web page for runs and sweeps (trajectory legibility, the paper's P4).

The page is static (``static/``: HTML, CSS and plain JavaScript, no network); the data comes as
JavaScript files (``data/runs.js``, ``data/run-N.js``) that set a global, so the same page works
served live from 127.0.0.1 (data rebuilt on every request: a running episode updates) and
exported to a folder opened from disk. Agent-written text is only ever set as text, never as HTML.
"""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from curbench_env.scaffolds import parse_declaration
from curbench_env.trajectory import RunDirectory

OUTPUT_CHARS = 20_000
PATCH_CHARS = 30_000
LOG_CHARS = 8_000


def find_runs(paths: list[Path]) -> list[Path]:
    """The run directories among ``paths``: each a run, or a folder (a sweep) holding runs."""
    runs: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "config.json").exists() or (p / "steps.jsonl").exists():
            runs.append(p)
        elif p.is_dir():
            runs += sorted(d for d in p.iterdir() if (d / "config.json").exists() or (d / "steps.jsonl").exists())
    return runs


def _tail(text: str, n: int) -> str:
    return text if len(text) <= n else f"[... {len(text) - n} characters above not shown ...]\n" + text[-n:]


def _read(path: Path, n: int) -> str:
    try:
        return _tail(path.read_text(errors="replace"), n)
    except OSError:
        return ""


def _git(run: RunDirectory, *args: str) -> str:
    try:
        out = subprocess.run(run._git_argv(*args), capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


def _manifests(root: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The iteration manifests that can be read; a note for each that cannot."""
    out = []
    for d in sorted((root / "iterations").glob("[0-9]*")) if (root / "iterations").is_dir() else []:
        try:
            m = json.loads((d / "manifest.json").read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            notes.append(f"iterations/{d.name}/manifest.json is unreadable")
            continue
        if isinstance(m, dict) and isinstance(m.get("iteration"), int):
            out.append(m)
        else:
            notes.append(f"iterations/{d.name}/manifest.json is not a manifest")
    return out


def _load(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """A run's config, readable manifests and steps, read once; notes on what could not be read."""
    run = RunDirectory(root)
    notes: list[str] = []
    try:
        cfg = run.config
    except (OSError, ValueError):
        cfg, notes = {}, ["config.json is missing or unreadable"]
    its = _manifests(root, notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps = run.steps()
    notes += [str(w.message) for w in caught]
    return cfg, its, steps, notes


def _summary(root: Path, key: int, cfg: dict[str, Any], its: list[dict[str, Any]], steps: list[dict[str, Any]],
             notes: list[str]) -> dict[str, Any]:
    reset = next((s for s in steps if s.get("kind") == "reset"), {})
    base = reset.get("base_average", its[0].get("base_average") if its else None)
    scored = [m for m in its if isinstance(m.get("average"), int | float)]
    return {
        "key": key, "name": root.name, "env": cfg.get("env_id"), "agent": cfg.get("agent") or "?",
        "scaffolds": list(cfg.get("scaffolds") or []), "seed": cfg.get("seed"), "base": base,
        "best": max([m["average"] for m in scored], default=base), "iterations": len(scored), "steps": len(steps),
        "curve": [[m["iteration"], m["average"]] for m in scored],
        "finished": (root / "summary.json").exists(), "notes": notes,
    }


def run_summary(root: Path, key: int) -> dict[str, Any]:
    """One line of the comparison table (and what the curves need)."""
    return _summary(root, key, *_load(root))


def run_detail(root: Path, key: int) -> dict[str, Any]:
    """Everything the run page shows: steps, iterations with diffs, labels, declarations, usage."""
    from curbench_env.diagnostics import label_run

    config, manifests, steps, notes = _load(root)
    summary = _summary(root, key, config, manifests, steps, notes)
    run = RunDirectory(root)
    notes = list(notes)
    try:
        labels = {row["iteration"]: row for row in label_run(root)}
    except Exception as exc:  # damaged policy snapshots: show the rest
        labels, notes = {}, [*notes, f"diagnostics unavailable: {type(exc).__name__}: {exc}"]
    initial = _git(run, "rev-list", "--max-parents=0", "HEAD").split()
    previous = initial[-1] if initial else None
    iterations = []
    for m in manifests:
        d = root / "iterations" / f"{m['iteration']:02d}"
        commit = m.get("commit")
        diff_stat = patch = ""
        if commit and previous:
            diff_stat = _git(run, "diff", "--stat", previous, commit)
            patch = _tail(_git(run, "diff", previous, commit), PATCH_CHARS)
        if commit:
            previous = commit
        audit: Any = None
        try:
            audit = json.loads((d / "audit.json").read_text())
        except (OSError, ValueError):
            pass
        iterations.append({**m, "label": labels.get(m.get("iteration")), "declaration": parse_declaration(m.get("note", "")),
                           "diff_stat": diff_stat, "patch": patch, "audit": audit,
                           "train_log": _read(d / "train.log", LOG_CHARS), "eval_log": _read(d / "eval.log", LOG_CHARS)})
    usage = None
    try:
        usage = json.loads((root / "usage.json").read_text())
    except (OSError, ValueError):
        pass
    shown_steps = [{
        "step": s.get("step"), "kind": s.get("kind"), "action": s.get("action"),
        "output": _tail(str(s.get("output") or ""), OUTPUT_CHARS), "exit_code": s.get("exit_code"),
        "duration_s": s.get("duration_s"), "reward": s.get("reward"), "iteration": s.get("iteration"),
        "submission": {k: (s.get("submission") or {}).get(k) for k in ("status", "file", "error", "iteration")}
        if s.get("submission") else None,
    } for s in steps]
    return {**summary, "config": config, "timeline": shown_steps, "iterations_detail": iterations, "usage": usage,
            "notes": notes}


def _as_script(name: str, data: Any) -> bytes:
    # json.dumps escapes nothing HTML-special; "</" is broken up so agent text cannot end the script.
    text = json.dumps(data, default=str).replace("</", "<\\/")
    return f"window.{name} = {text};\n".encode()


def _runs_script(runs: list[Path]) -> bytes:
    return _as_script("CURBENCH_RUNS", {"runs": [run_summary(r, k) for k, r in enumerate(runs)], "generated": time.time()})


def data_files(runs: list[Path]) -> dict[str, bytes]:
    """The data scripts of the page, by relative path."""
    files = {"data/runs.js": _runs_script(runs)}
    for k, r in enumerate(runs):
        files[f"data/run-{k}.js"] = _as_script("CURBENCH_RUN", run_detail(r, k))
    return files


def static_files() -> dict[str, bytes]:
    """The page itself (HTML, CSS, JavaScript), from the installed package."""
    folder = resources.files("curbench_env.viewer") / "static"
    return {f"{f.name}": f.read_bytes() for f in folder.iterdir() if f.name.endswith((".html", ".css", ".js"))}


def export(runs: list[Path], out: Path) -> list[Path]:
    """Write the page and its data to ``out`` (open ``out/index.html`` from disk)."""
    written = []
    for rel, data in {**static_files(), **data_files(runs)}.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def serve(runs: list[Path], port: int = 8765, ready: Any = None) -> None:
    """Serve the page on 127.0.0.1:``port`` until interrupted; data is rebuilt at every request."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    statics = static_files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0].lstrip("/") or "index.html"
            body: bytes | None = statics.get(path)
            if body is None and path == "data/runs.js":
                body = _runs_script(runs)
            elif body is None and path.startswith("data/run-") and path.endswith(".js"):
                try:
                    k = int(path[len("data/run-"):-3])
                    body = _as_script("CURBENCH_RUN", run_detail(runs[k], k))
                except (ValueError, IndexError):
                    body = None
            if body is None:
                self.send_error(404)
                return
            kind = {"html": "text/html", "css": "text/css", "js": "text/javascript"}[path.rsplit(".", 1)[-1]]
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # quiet: the CLI says where the page is
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
