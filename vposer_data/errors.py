"""The pipeline's own exceptions (reading errors live in ``amass``, split errors in ``splits``)."""

from __future__ import annotations

__all__ = ["PrepareError", "StaleOutputError"]


class PrepareError(RuntimeError):
    """Preparation cannot go on; the message says which split, file or setting, and why."""


class StaleOutputError(PrepareError):
    """The output folder holds data prepared with other settings; the message lists them."""
