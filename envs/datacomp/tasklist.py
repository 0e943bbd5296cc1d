"""DataComp's evaluation suite as data: its ``tasklist.yml`` (40 tasks, 38 with a main metric).

Each task's evaluation set is a webdataset in clip-benchmark's layout (``classnames.txt``,
``zeroshot_classification_templates.txt``, ``test/nshards.txt``, ``test/0.tar`` ...), in the
folder DataComp's ``download_evalsets.py`` gives it: ``wds_<key with / as ->_test``. The
score is the plain mean of the main metrics (DataComp's ``aggregate_scores.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalTask:
    """One DataComp evaluation task: its key, display name, main metric and kind."""

    key: str
    name: str
    #: The metric DataComp averages; None for FairFace and UTKFace (reported, not averaged).
    main_metric: str | None = "acc1"
    #: ``classification`` or ``retrieval`` (clip-benchmark's zero-shot tasks), or ``datacomp``:
    #: a metric over per-sample groups (regions, income) or WinoGAViL's own format, which only
    #: DataComp's ``evaluate.py`` computes.
    kind: str = "classification"


def _c(key: str, name: str, metric: str = "acc1") -> EvalTask:
    return EvalTask(key, name, metric)


TASKS: tuple[EvalTask, ...] = (
    _c("vtab/caltech101", "Caltech-101", "mean_per_class_recall"),
    _c("cifar10", "CIFAR-10"),
    _c("vtab/cifar100", "CIFAR-100"),
    _c("vtab/clevr_count_all", "CLEVR Counts"),
    _c("vtab/clevr_closest_object_distance", "CLEVR Distance"),
    _c("country211", "Country211"),
    _c("vtab/dtd", "Describable Textures"),
    _c("vtab/eurosat", "EuroSAT"),
    _c("fgvc_aircraft", "FGVC Aircraft", "mean_per_class_recall"),
    _c("food101", "Food-101"),
    _c("gtsrb", "GTSRB"),
    _c("imagenet1k", "ImageNet 1k"),
    _c("imagenet_sketch", "ImageNet Sketch"),
    _c("imagenetv2", "ImageNet v2"),
    _c("imagenet-a", "ImageNet-A"),
    _c("imagenet-o", "ImageNet-O"),
    _c("imagenet-r", "ImageNet-R"),
    _c("vtab/kitti_closest_vehicle_distance", "KITTI Vehicle Distance"),
    _c("mnist", "MNIST"),
    _c("objectnet", "ObjectNet"),
    _c("vtab/flowers", "Oxford Flowers-102", "mean_per_class_recall"),
    _c("vtab/pets", "Oxford-IIIT Pet", "mean_per_class_recall"),
    _c("voc2007", "Pascal VOC 2007"),
    _c("vtab/pcam", "PatchCamelyon"),
    _c("renderedsst2", "Rendered SST2"),
    _c("vtab/resisc45", "RESISC45"),
    _c("cars", "Stanford Cars"),
    _c("stl10", "STL-10"),
    _c("sun397", "SUN397"),
    _c("vtab/svhn", "SVHN"),
    EvalTask("retrieval/flickr30k", "Flickr", "mean_recall@1", "retrieval"),
    EvalTask("retrieval/mscoco_2014_5k_test_image_text_retrieval", "MSCOCO", "mean_recall@1", "retrieval"),
    EvalTask("misc/winogavil", "WinoGAViL", "jaccard_score_10-12", "datacomp"),
    # iWildCam's macro F1 and Camelyon17's accuracy come from plain predictions.
    _c("wilds/iwildcam", "iWildCam", "F1-macro_all"),
    _c("wilds/camelyon17", "Camelyon17"),
    EvalTask("wilds/fmow", "FMoW", "acc_worst_region", "datacomp"),
    EvalTask("fairness/dollar_street", "Dollar Street", "acc_top5_wg", "datacomp"),
    EvalTask("fairness/geode", "GeoDE", "acc_wg", "datacomp"),
    EvalTask("fairness/fairface", "FairFace", None, "datacomp"),
    EvalTask("fairness/utkface", "UTKFace", None, "datacomp"),
)

BY_KEY: dict[str, EvalTask] = {t.key: t for t in TASKS}
#: The 38 tasks whose main metrics DataComp averages.
MAIN_TASKS: tuple[EvalTask, ...] = tuple(t for t in TASKS if t.main_metric is not None)
#: The main tasks the clip-benchmark evaluator computes (all but the group metrics and WinoGAViL).
LIBRARY_TASKS: tuple[EvalTask, ...] = tuple(t for t in MAIN_TASKS if t.kind != "datacomp")
#: clip-benchmark's own names for the retrieval sets it publishes as webdatasets.
ALIASES: dict[str, tuple[str, ...]] = {
    "retrieval/flickr30k": ("wds_flickr30k",),
    "retrieval/mscoco_2014_5k_test_image_text_retrieval": ("wds_mscoco_captions",),
}


def folder_name(key: str) -> str:
    """The folder DataComp's ``download_evalsets.py`` writes a task's webdataset into."""
    return f"wds_{key.split('/', 1)[1] if key.startswith('fairness/') else key.replace('/', '-')}_test"


def evalset_dir(root: Path, key: str) -> Path | None:
    """A task's evaluation set under ``root`` (DataComp's folder, else clip-benchmark's), or None."""
    for name in (folder_name(key), *ALIASES.get(key, ())):
        if (Path(root) / name / "test" / "nshards.txt").is_file():
            return Path(root) / name
    return None


def resolve(tasks: str | list[str] | tuple[str, ...] | None) -> tuple[EvalTask, ...]:
    """Task keys (or ``None``/"all": every task the clip-benchmark evaluator computes) → tasks."""
    if tasks is None or tasks == "all":
        return LIBRARY_TASKS
    keys = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise ValueError(f"unknown DataComp task(s) {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
    return tuple(BY_KEY[k] for k in keys)
