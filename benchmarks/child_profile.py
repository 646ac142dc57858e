"""Benchmark child: the pipeline call of ``child_pipeline.py`` under cProfile.

    python benchmarks/child_profile.py AMASS_DIR OUT_DIR STATS_PATH [SETTINGS_JSON]

Main process only: the DataLoader workers of Stage II are separate processes and do not
appear; their share shows as the main process waiting for batches. The parent side,
:func:`run_profile`, runs it once (unmeasured) and formats the statistics it saved.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

STAGE_FUNCTIONS = ("run_stage1", "run_stage2", "run_stage3")


def main(argv: list[str]) -> None:
    profile = cProfile.Profile()
    profile.enable()
    from vposer_data import AMASS_SPLITS
    from vposer_data.config import PrepareConfig
    from vposer_data.prepare import prepare_vposer_datasets

    amass_dir, out_dir, stats_path = argv[0], argv[1], argv[2]
    settings: dict[str, Any] = json.loads(argv[3]) if len(argv) > 3 else {}
    config = PrepareConfig(**{"progress": False, **settings})
    prepare_vposer_datasets(AMASS_SPLITS, amass_dir, out_dir, config=config)
    profile.disable()
    profile.dump_stats(stats_path)


# ---------------------------------------------------------------------------------------------
# parent side


def run_profile(amass: Path, work_dir: Path, top: int, settings: dict[str, Any]) -> str:
    """One extra, unmeasured pipeline run under cProfile; the top functions as text (the
    statistics are kept in ``work_dir/last_profile.pstats``)."""
    scratch = Path(tempfile.mkdtemp(prefix="profile-", dir=work_dir))
    stats_path = scratch / "prepare.pstats"
    try:
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                str(amass),
                str(scratch / "vposer_data"),
                str(stats_path),
                json.dumps(settings),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        saved = work_dir / "last_profile.pstats"
        shutil.copyfile(stats_path, saved)
        lines: list[str] = [
            f"cProfile of one extra pipeline run: main process only, DataLoader workers not "
            f"included (their share of stage II shows as waiting); saved to {saved}"
        ]
        for sort in ("tottime", "cumulative"):
            sink = _StringSink()
            stats = pstats.Stats(str(stats_path), stream=sink)  # type: ignore[arg-type]
            stats.strip_dirs().sort_stats(sort).print_stats(top)
            lines.append(f"--- top {top} by {sort} ---")
            lines.extend(_stats_rows(sink.text(), header=sort == "tottime"))
        raw = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
        for stage in STAGE_FUNCTIONS:
            lines.append(f"--- {stage}: own time and top {top} direct callees, cumulative ---")
            lines.extend(_callees(raw, stage, top))
        return "\n".join(lines)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _callees(raw: dict[Any, Any], function: str, top: int) -> list[str]:
    """``function``'s own and cumulative time, then its direct callees by cumulative time."""
    keys = [key for key in raw if key[2] == function]
    rows = []
    for key in keys:
        _cc, calls, own, cumulative, _callers = raw[key]
        rows.append(
            f"  {cumulative:8.3f} s cumulative, {own:8.3f} s own, {calls} call(s): "
            f"{Path(key[0]).name}:{key[1]}({function})"
        )
        edges = [
            (edge[3], edge[1], callee)
            for callee, (*_stat, callers) in raw.items()
            if key in callers
            for edge in [callers[key]]
        ]
        for cumulative_edge, calls_edge, callee in sorted(edges, reverse=True)[:top]:
            where = f"{Path(callee[0]).name}:{callee[1]}" if callee[0] != "~" else ""
            rows.append(f"  {cumulative_edge:8.3f} s  {calls_edge:6d}x  {where}({callee[2]})")
    return rows or [f"  {function}: not found in the profile"]


def _stats_rows(text: str, header: bool) -> list[str]:
    """The rows of a pstats listing (and its column header and total line if asked)."""
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped[:1].isdigit() or (header and ("ncalls" in line or "function calls" in line)):
            rows.append(line)
    return rows


class _StringSink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


if __name__ == "__main__":
    main(sys.argv[1:])
