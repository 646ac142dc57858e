"""The documentation's tables, made from the declarations they describe, so they cannot drift.

Each table is a function of one declaration: the settings of :mod:`vposer_data.config`, the
fields of :mod:`vposer_data.fields`, the augmentations of :mod:`vposer_data.augment.registry`,
the joint names of :mod:`vposer_data.skeleton` and the commands of :mod:`vposer_data.cli`. A page
holds a table between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; this module rewrites
what is between them, or, with ``--check``, says which pages differ (the tests run it)::

    python -m vposer_data.doc_tables docs [--check]

Torch-free: it imports only the declarations.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["TABLES", "commands_table", "fields_table", "marked_tables", "render", "update"]

#: A generated table's markers (``<!-- settings-table:start -->``); other marked text is the
#: author's (``<!-- extras:start -->``).
_MARKER = re.compile(r"<!-- ([a-z-]+-table):start -->\n(.*?)\n?<!-- \1:end -->", re.S)
_FAMILY_NAMES = {"smpl": "SMPL", "smplh": "SMPL+H", "smplx": "SMPL-X"}


def _cell(text: str) -> str:
    """Text fit for a Markdown table cell."""
    return text.replace("|", "\\|")


def _shape(dims: Sequence[object]) -> str:
    """A shape as Python writes a tuple: ``()``, ``(3,)``, ``(T, J, 3)``."""
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def fields_table() -> str:
    """Every field of :data:`vposer_data.fields.FIELDS` (and the rotation representations an
    augmentation derives), with the shape of one sample's value, its dtype and what makes it."""
    from vposer_data.fields import ALL_FAMILIES, FIELDS, REPRESENTATIONS, STAGE_I_MAKERS

    makers = dict(zip(STAGE_I_MAKERS, ("read from AMASS", "Stage I (provenance)",
                                       "Stage I (canonical clips)"), strict=True))  # fmt: skip
    rows = [
        "| field | one sample (frames) | clips | dtype | families | made by | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FIELDS.values():
        symbol = "J" if f.inner else "B"  # a width decided by the model (J) or the file (B)
        value = f.row_shape(width=1)
        dims = (symbol, *value[1:]) if f.width is None else value
        clip_dims = ("T", *dims) if f.per == "frame" else dims
        families = (
            "all"
            if set(f.families) == set(ALL_FAMILIES)
            else ", ".join(_FAMILY_NAMES[name] for name in f.families) or "derived"
        )
        made = makers.get(f.made_by) or f"`{f.made_by}` augmentation" + (
            " (Stage I, from the source motion)" if f.from_source else ""
        )
        shown = "clips only" if f.clips_only else _shape(dims)
        rows.append(
            f"| `{f.name}` | {shown} | {_shape(clip_dims)} | {f.dtype} | {families} | {made} "
            f"| {_cell(f.summary)} |"
        )
    for suffix, numbers in REPRESENTATIONS.items():
        rows.append(
            f"| `<pose field>_{suffix}` | ({numbers}·joints,) | (T, {numbers}·joints) | float32 "
            f"| derived | `{suffix}` augmentation | each joint of a pose field (such as "
            f"`pose_body_{suffix}`), as the `{suffix}` augmentation says |"
        )
    return "\n".join(rows)


def commands_table() -> str:
    """Each subcommand of ``vposer-data``: its usage, what it does and its documentation page."""
    from vposer_data.cli import DOCS_PAGES, build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {action.dest: action.help for action in commands._choices_actions}
    rows = ["| command | what it does | page |", "|---|---|---|"]
    for name, sub in commands.choices.items():
        words = [f"vposer-data {name}"]
        options = False
        for action in sub._actions:
            if not action.option_strings:
                words.append(str(action.metavar or action.dest.upper()))
            elif action.required:
                words.append(f"{action.option_strings[0]} {action.dest.upper()}")
            elif action.dest != "help":
                options = True
        usage = " ".join(words) + (" [options]" if options else "")
        page = DOCS_PAGES[name]
        rows.append(f"| `{usage}` | {_cell(helps[name] or '')} | [{page}]({page}) |")
    return "\n".join(rows)


def _settings_table() -> str:
    from vposer_data.config import settings_table

    return settings_table()


def _augmentations_table() -> str:
    from vposer_data.augment.registry import augmentations_table

    return augmentations_table()


def _joints_table() -> str:
    from vposer_data.skeleton import joints_table

    return joints_table()


#: Marker name -> the function that makes its table.
TABLES: dict[str, Callable[[], str]] = {
    "settings-table": _settings_table,
    "fields-table": fields_table,
    "augmentations-table": _augmentations_table,
    "joints-table": _joints_table,
    "commands-table": commands_table,
}


def marked_tables(text: str) -> dict[str, str]:
    """Marker name -> the text between its markers in ``text``."""
    return {match.group(1): match.group(2) for match in _MARKER.finditer(text)}


def render(text: str, source: str = "<text>") -> str:
    """``text`` with every marked table made anew; a marker naming no table is a ValueError."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"{source}: unknown table marker {name!r}; known: {sorted(TABLES)}")
        return f"<!-- {name}:start -->\n{TABLES[name]()}\n<!-- {name}:end -->"

    return _MARKER.sub(fill, text)


def update(docs_dir: str | Path, check: bool = False) -> list[str]:
    """Make every marked table of the pages under ``docs_dir`` anew (``check``: write nothing).
    Returns the pages that differed, and raises ValueError when a table is on no page."""
    pages = sorted(Path(docs_dir).rglob("*.md"))
    seen: set[str] = set()
    differed = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        seen.update(marked_tables(text))
        made = render(text, str(page))
        if made != text:
            differed.append(str(page))
            if not check:
                page.write_text(made, encoding="utf-8")
    missing = sorted(set(TABLES) - seen)
    if missing:
        raise ValueError(f"{docs_dir}: no page holds the tables {missing}; add their markers")
    return differed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vposer_data.doc_tables",
        description="Make the documentation's tables anew from the declarations.",
    )
    parser.add_argument("docs_dir", type=Path, help="the documentation folder (docs)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a table is out of date"
    )
    args = parser.parse_args(argv)
    try:
        differed = update(args.docs_dir, check=args.check)
    except ValueError as exc:
        print(f"doc_tables: error: {exc}", file=sys.stderr)
        return 2
    for page in differed:
        verb = "out of date" if args.check else "updated"
        print(f"{page}: {verb}", file=sys.stderr if args.check else sys.stdout)
    if args.check and differed:
        print("run: python -m vposer_data.doc_tables docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
