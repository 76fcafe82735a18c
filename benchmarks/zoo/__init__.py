"""The task zoo: real tasks from registry packages, split for two Flywheel cycles and a
held-out measurement, and the hand-made baseline (``zoo.baseline``, imports torch) that
Flywheel's defaults are compared with."""

from .datasets import TASKS, data_dir, load_task
from .task import SplitSizes, ZooDataMissing, ZooDataTooSmall, ZooTask

__all__ = [
    "TASKS",
    "SplitSizes",
    "ZooDataMissing",
    "ZooDataTooSmall",
    "ZooTask",
    "data_dir",
    "load_task",
]
