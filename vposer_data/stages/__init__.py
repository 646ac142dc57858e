"""The three stages, one module each, and the table the driver runs them from.

Each stage is a function ``run(job: SplitJob) -> record`` writing one split's output into a
temporary place (see :mod:`vposer_data.stages.job`); :mod:`vposer_data.prepare` owns the rest:
the temporary folder or file and its rename, the manifest record, timing, logging and Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vposer_data.manifest import STAGE_I, STAGE_II, STAGE_III, STAGES
from vposer_data.records import StageRecord
from vposer_data.stages.job import SplitJob
from vposer_data.stages.stage1 import run_stage1
from vposer_data.stages.stage2 import run_stage2
from vposer_data.stages.stage3 import run_stage3

__all__ = ["PIPELINE", "SplitJob", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One stage: its name (``stage_I`` ...), what it makes per split, its function, and
    whether its output is final (made durable before it is recorded; intermediates are
    verified instead when a later run reuses them)."""

    name: str
    makes: Literal["folder", "file"]
    run: Callable[[SplitJob], StageRecord]
    final: bool = False


#: The stages in order; their names are the manifest's and the folder layout's.
PIPELINE: tuple[Stage, ...] = (
    Stage(STAGE_I, "folder", run_stage1),
    Stage(STAGE_II, "file", run_stage2),
    Stage(STAGE_III, "folder", run_stage3, final=True),
)
if tuple(stage.name for stage in PIPELINE) != STAGES:  # pragma: no cover - a coding error
    raise RuntimeError(f"PIPELINE {PIPELINE} does not follow manifest.STAGES {STAGES}")
