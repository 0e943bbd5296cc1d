"""The programs on the workspace PATH: `submit` and the task's own tools, copied into a bin folder."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path


def install_tools(bin_dir: Path, task_tools: Path | None) -> Path:
    """Fill ``bin_dir`` afresh with `submit` and the executables in ``task_tools``; returns it."""
    if bin_dir.exists():
        shutil.rmtree(bin_dir)
    bin_dir.mkdir(parents=True)
    sources = [("submit", resources.files("curbench_env.sandbox_bin") / "submit")]
    if task_tools is not None:
        sources += [(t.name, t) for t in sorted(Path(task_tools).iterdir())
                    if t.is_file() and not t.name.startswith(("_", "."))]
    for name, src in sources:
        (bin_dir / name).write_bytes(src.read_bytes())
        (bin_dir / name).chmod(0o755)
    return bin_dir
