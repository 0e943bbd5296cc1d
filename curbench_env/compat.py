"""Import-time fixes for third-party packages on CPU-only machines.

PyPI ships torchvision 0.28.0 (the only release that pairs with torch 2.13.0) as a CUDA build
only. On a CPU torch its C++ extension cannot load and ``import torchvision`` then crashes on
an unguarded ``register_fake("torchvision::nms")``, which takes open_clip, lmms-eval and
transformers' image processors down with it. :func:`ensure_torchvision` defines the two op
schemas (with a pure-torch nms kernel) only when the extension really cannot load, so it is a
no-op on GPU machines with a working torchvision. Call it before importing any of those.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_DONE = False
_LIB = None


def _extension_loads() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: nothing to fix (the import error will say so)
    for loc in spec.submodule_search_locations:
        for lib in Path(loc).glob("_C*.so"):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError):
                return False
    return False


def _nms(dets, scores, iou_threshold: float):
    import torch

    order = scores.argsort(descending=True)
    lt = torch.max(dets[:, None, :2], dets[None, :, :2])
    rb = torch.min(dets[:, None, 2:], dets[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (dets[:, 2:] - dets[:, :2]).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter)
    keep, suppressed = [], torch.zeros(len(dets), dtype=torch.bool)
    for i in order.tolist():
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def ensure_torchvision() -> None:
    """Make ``import torchvision`` work on a CPU-only torch (idempotent)."""
    global _DONE, _LIB
    if _DONE:
        return
    _DONE = True
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018  (already registered: real extension or an earlier fix)
        return
    except (AttributeError, RuntimeError):
        pass
    if _extension_loads():
        return
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.impl("nms", _nms, "CPU")


class _TorchvisionFinder:
    """Runs :func:`ensure_torchvision` right before the first ``import torchvision`` (by anyone:
    transformers, peft, open_clip, lmms-eval), then gets out of the way."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "torchvision":
            import sys

            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            ensure_torchvision()
        return None


def install_import_hook() -> None:
    """Make every later ``import torchvision`` in this process safe on a CPU-only torch (idempotent)."""
    import sys

    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionFinder())


class _DropCpuAcceleratorNotice:
    """Logging filter: DeepSpeed's 'Setting accelerator to CPU' notice, printed whenever transformers
    imports its DeepSpeed integration (saving a model), says nothing on a machine that has no GPU."""

    def filter(self, record) -> bool:
        return "Setting accelerator to CPU" not in record.getMessage()


def quiet_deepspeed_cpu_notice() -> None:
    """Drop that one notice from DeepSpeed's logger (idempotent; it keeps every other message)."""
    import logging

    logger = logging.getLogger("DeepSpeed")  # DeepSpeed's own logger name; it keeps filters set before it
    if not any(isinstance(f, _DropCpuAcceleratorNotice) for f in logger.filters):
        logger.addFilter(_DropCpuAcceleratorNotice())


install_import_hook()
quiet_deepspeed_cpu_notice()
