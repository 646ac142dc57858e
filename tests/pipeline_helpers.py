"""Kept only for tests/test_amass_integrity.py, which still imports from here: the shared test
helpers are in tests/helpers.py (``make_tree`` is ``helpers.write_tree``). Remove this module
once that file imports from helpers."""

from helpers import prepare, read_manifest
from helpers import write_tree as make_tree

__all__ = ["make_tree", "prepare", "read_manifest"]
