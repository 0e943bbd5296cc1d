"""A seccomp filter that stops the sandbox from creating user namespaces.

Inside a user namespace a process is root again and can mount file systems and set up further
sandboxes of its own; bubblewrap's ``--disable-userns`` prevents that only when bwrap itself made
the user namespace, which it does not when the harness runs as root and drops to an unprivileged
uid with ``setpriv``. This classic BPF program (what ``bwrap --seccomp FD`` loads) makes
``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with EPERM and ``clone3`` (whose flags sit
in memory a filter cannot read) fail with ENOSYS, so C libraries fall back to ``clone``; system
calls through another ABI (i386, x32) fail with ENOSYS.
"""

from __future__ import annotations

import os
import platform
import struct

CLONE_NEWUSER = 0x10000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
# (audit arch, unshare, clone, clone3) per machine
_ARCHES = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_X32_BIT = 0x40000000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low 32 bits (little endian)


def no_user_namespaces_filter(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine's architecture, or None where it is not known."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, nr_unshare, nr_clone, nr_clone3 = arch
    prog = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),           # 0
        (_JEQ_K, 0, 9, audit_arch),              # 1: a foreign ABI (i386 entry on x86_64): ENOSYS (11)
        (_LD_W_ABS, 0, 0, _OFF_NR),              # 2
        (_JGE_K, 7, 0, _X32_BIT),                # 3: the x32 ABI's numbers: ENOSYS (11)
        (_JEQ_K, 6, 0, nr_clone3),               # 4: clone3: ENOSYS (11)
        (_JEQ_K, 1, 0, nr_unshare),              # 5: unshare: check its flags (7)
        (_JEQ_K, 0, 2, nr_clone),                # 6: clone: check its flags (7); anything else: allow (9)
        (_LD_W_ABS, 0, 0, _OFF_ARG0),            # 7
        (_JSET_K, 1, 0, CLONE_NEWUSER),          # 8: CLONE_NEWUSER set: EPERM (10), else allow (9)
        (_RET_K, 0, 0, _RET_ALLOW),              # 9
        (_RET_K, 0, 0, _RET_ERRNO | _EPERM),     # 10
        (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS),    # 11
    ]
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def filter_fd() -> int | None:
    """An inheritable memory file holding the filter, positioned at its start, for ``bwrap --seccomp``."""
    prog = no_user_namespaces_filter()
    if prog is None:
        return None
    fd = os.memfd_create("curbench-seccomp", 0)
    os.write(fd, prog)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
