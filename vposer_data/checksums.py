"""CRC-32 (the zip checksum): python-isal's when it is installed (about 4x zlib's here, 14 vs
3.5 GB/s), else zlib's. Every AMASS member Stage I maps is checked with it, and so is the
Stage II file when a later run reuses it. Both release the GIL."""

from __future__ import annotations

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib's gives the same values
    from zlib import crc32

__all__ = ["crc32"]
