"""How a benchmark child hands its figures to the parent: one line, a mark and a JSON object.

Imported by the child programs (``child_*.py``), so it uses only the standard library and
costs them nothing measurable; ``bench_common.run_child`` reads the line back.
"""

from __future__ import annotations

import json
import resource
from typing import Any

RESULT_MARK = "BENCH_RESULT "


def emit(values: dict[str, Any]) -> None:
    """Print ``values`` (plus the child's own ru_maxrss and that of its reaped children, in
    kilobytes) as the result line."""
    values = {
        **values,
        "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    print(RESULT_MARK + json.dumps(values, default=str), flush=True)


def parse(output: str) -> dict[str, Any] | None:
    """The last result line in a child's output, or None if it printed none."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        return None
    value: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
    return value
