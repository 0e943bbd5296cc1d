"""``open_clip_train.main`` behind the CPU-torch torchvision fix: what the launcher starts.

    torchrun --nproc_per_node N openclip_main.py ARGS.json

ARGS.json is the list of open_clip_train arguments (passed through a file because torchrun's
own option parser would claim some of them, e.g. ``--logs``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from curbench_env.compat import ensure_torchvision

    ensure_torchvision()
    import json

    from open_clip_train.main import main as train_main

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        with open(argv[0]) as fh:
            argv = json.load(fh)
    train_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
