"""Benchmark child: the pipeline as a user runs it, in a fresh interpreter.

    python benchmarks/child_pipeline.py AMASS_DIR OUT_DIR [SETTINGS_JSON]

Imports the package (timed), calls ``prepare_vposer_datasets(AMASS_SPLITS, AMASS_DIR, OUT_DIR,
config=PrepareConfig(progress=False, **SETTINGS))`` and prints one result line
(``result_line.emit``): import and call seconds, the epoch times around the call (to place
the stages on the parent's memory timeline), ``PrepareResult.seconds``/``samples``/
``skipped``, the settings in effect and which ``vposer_data`` was imported. With
``PYTHONPATH`` naming an exported copy of the package, the same child measures that version.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from result_line import emit

#: The settings reported back (those a version may lack are left out).
REPORTED_SETTINGS = (
    "num_workers",
    "batch_size",
    "hdf5_compression",
    "hdf5_compression_level",
    "augmentations",
    "keep_rate",
    "sampling",
    "target_fps",
    "clip_frames",
    "clip_stride",
)


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    import vposer_data
    from vposer_data import AMASS_SPLITS
    from vposer_data.config import PrepareConfig
    from vposer_data.prepare import prepare_vposer_datasets

    imported = time.perf_counter()
    amass_dir, out_dir = argv[0], argv[1]
    settings: dict[str, Any] = json.loads(argv[2]) if len(argv) > 2 else {}
    config = PrepareConfig(**{"progress": False, **settings})
    epoch_start = time.time()
    result = prepare_vposer_datasets(AMASS_SPLITS, amass_dir, out_dir, config=config)
    epoch_end = time.time()
    finished = time.perf_counter()
    emit(
        {
            "imports": imported - started,
            "prepare": finished - imported,
            "epoch_prepare_start": epoch_start,
            "epoch_prepare_end": epoch_end,
            "seconds": dict(getattr(result, "seconds", {})),
            "samples": dict(result.samples),
            "skipped": dict(getattr(result, "skipped", {})),
            "settings": {k: getattr(config, k) for k in REPORTED_SETTINGS if hasattr(config, k)},
            "package": vposer_data.__file__,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
