"""A real Docker daemon for the tests: started privately (its own data root and socket), with an
image built offline from this machine's own binaries (bash, coreutils, python3 and their libraries),
since no registry is reachable here or in CI. Skips with the reason when the daemon cannot start."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

IMAGE = "curbench-test-sandbox:latest"
TOOLS = ("bash", "sh", "dash", "env", "ls", "cat", "grep", "head", "tail", "id", "sleep", "ps", "kill", "mkdir",
         "rm", "wc", "printf", "seq", "du", "tr", "echo", "true", "false", "pwd", "cut", "sort", "uniq", "touch",
         "cp", "mv", "ln", "chmod", "sed", "awk", "mawk", "xargs", "find", "timeout", "unshare", "setsid", "nproc", "python3",
         "python3.11")


def _libraries(paths: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for p in paths:
        out = subprocess.run(["ldd", str(p)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            for part in parts:
                if part.startswith("/") and os.path.exists(part):
                    libs.add(Path(part))
    return libs


def _chain(path: Path) -> list[Path]:
    """``path`` and every link it goes through, with the directories above each resolved (this
    host merges /bin, /lib into /usr: the image repeats that with the same top-level links)."""
    out: list[Path] = []
    current = Path(os.path.realpath(path.parent)) / path.name
    while current not in out:
        out.append(current)
        if not current.is_symlink():
            break
        target = Path(os.readlink(current))
        target = target if target.is_absolute() else current.parent / target
        current = Path(os.path.realpath(target.parent)) / target.name
    return out


def host_rootfs_tar() -> bytes:
    """A tar of a minimal root file system made of this host's tools, Python and their libraries."""
    search = "/usr/bin:/bin:/usr/sbin"
    bins = [Path(shutil.which(t, path=search) or "") for t in TOOLS if shutil.which(t, path=search)]
    stdlib = Path("/usr/lib/python3.11")
    dynload = list((stdlib / "lib-dynload").glob("*.so"))
    paths: list[Path] = []
    for p in [*bins, *_libraries([b.resolve() for b in bins] + dynload)]:
        paths += _chain(p)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "tmp", "proc", "dev", "sys", "etc", "workspace",
                  "pool"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for top in ("bin", "lib", "lib64", "sbin"):
            if Path("/" + top).is_symlink():
                info = tarfile.TarInfo(top)
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink("/" + top)
                tar.addfile(info)
        added: set[str] = set()
        for f in paths:
            name = str(f).lstrip("/")
            if name not in added:
                added.add(name)
                tar.add(str(f), arcname=name, recursive=False)
        if Path("/usr/lib/locale/C.utf8").exists():  # the C.UTF-8 locale the workspace's LC_ALL names
            tar.add("/usr/lib/locale/C.utf8", arcname="usr/lib/locale/C.utf8")
        if stdlib.exists():
            tar.add(str(stdlib), arcname=str(stdlib).lstrip("/"),
                    filter=lambda t: None if "__pycache__" in t.name or "/test/" in t.name else t)
        for name, text in (("etc/passwd", "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class PrivateDockerDaemon:
    """dockerd with its data root and socket under ``root``; ``client`` talks to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = None

    def start(self, timeout_s: float = 30.0) -> None:
        import docker

        log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "-H", f"unix://{self.socket}", "--bridge", "none",
             "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.client = docker.DockerClient(base_url=f"unix://{self.socket}", timeout=60)
                self.client.ping()
                return
            except Exception:
                time.sleep(0.3)
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-800:]
        self.stop()
        raise RuntimeError(f"dockerd did not start: {tail}")

    def build_image(self) -> str:
        assert self.client is not None
        self.client.api.import_image_from_data(host_rootfs_tar(), repository=IMAGE.split(":")[0], tag="latest")
        return IMAGE

    def stop(self) -> None:
        if self.client is not None:
            for c in self.client.containers.list(all=True):
                try:
                    c.remove(force=True)
                except Exception:
                    pass
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory):
    """(client, image) of a private daemon; skips with the reason where it cannot run."""
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("starting dockerd needs root on this machine")
    pytest.importorskip("docker")
    daemon = PrivateDockerDaemon(Path(tmp_path_factory.mktemp("dockerd")))
    try:
        daemon.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield daemon.client, daemon.build_image()
    finally:
        daemon.stop()
