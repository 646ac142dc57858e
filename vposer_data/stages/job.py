"""What a stage is given: one split's inputs and the temporary place to write its output.

A stage is a function ``run(job) -> record``: it reads what ``job`` points at, writes its
output to ``job.out`` (a temporary folder or file that the driver renames to ``job.final``
when the stage returns) and returns the record the manifest keeps. Errors name ``job.final``,
the path the user will look for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vposer_data.config import PrepareConfig
from vposer_data.manifest import STAGE_I, Manifest, stage_path
from vposer_data.models_used import BodyModels
from vposer_data.records import Stage1Record
from vposer_data.runlog import RunLog
from vposer_data.splits import SourceFile

__all__ = ["SplitJob"]


@dataclass
class SplitJob:
    """One stage's work on one split."""

    split: str
    config: PrepareConfig
    manifest: Manifest
    log: RunLog
    out: Path  # temporary output: a folder (Stages I, III) or a file (Stage II)
    final: Path  # where the output lands when the stage returns
    amass_dir: Path | None = None
    sources: list[SourceFile] | None = None  # Stage I: the split's candidate files
    body_models: BodyModels | None = None  # the models of the joints and contacts fields

    def input_path(self, stage: str) -> Path:
        """Where an earlier stage put this split."""
        return stage_path(self.manifest.root, stage, self.split)

    def stage1_record(self) -> Stage1Record:
        """Stage I's manifest record of this split (which later stages run after)."""
        record = self.manifest.stage1(self.split)
        if record is None:
            raise RuntimeError(f"{STAGE_I} has no record of split {self.split!r}")
        return record
