"""Saving tensors: the checksum a record carries is the checksum of the file's bytes, whatever
the tensor's size (SHA-256 is computed on a helper thread from views of the tensor's memory
and copies of torch's own buffers), and the bytes are those ``torch.save`` writes to a buffer,
whatever the file is called."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.tensorfile import save_field, save_tensor


def _reference_bytes(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor.contiguous().clone(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("checksum", ["sha256", "crc32"])
@pytest.mark.parametrize("rows", [0, 1, 1000, 700_000])  # up to 176 MB, several write calls
def test_the_record_is_the_checksum_of_the_bytes_written(
    tmp_path: Path, checksum: str, rows: int
) -> None:
    tensor = torch.arange(rows * 63, dtype=torch.float32).reshape(rows, 63)
    path = tmp_path / "pose_body.pt"
    record = save_tensor(path, tensor, checksum=checksum)  # type: ignore[arg-type]
    data = path.read_bytes()
    assert record.bytes == len(data)
    expected = (
        hashlib.sha256(data).hexdigest() if checksum == "sha256" else f"{zlib.crc32(data):08x}"
    )
    assert record.as_dict() == {"bytes": len(data), checksum: expected}
    assert data == _reference_bytes(tensor)  # not named after the file
    assert torch.equal(torch.load(path, weights_only=True), tensor)


def test_a_view_is_saved_without_its_base(tmp_path: Path) -> None:
    base = torch.arange(10_000, dtype=torch.float64).reshape(100, 100)
    view = base[10:20, 5:7]
    record = save_tensor(tmp_path / "v.pt", view)
    data = (tmp_path / "v.pt").read_bytes()
    assert record.value == hashlib.sha256(data).hexdigest()
    assert len(data) < 2_000  # 20 doubles and the archive around them, not the base
    assert torch.equal(torch.load(tmp_path / "v.pt", weights_only=True), view)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    dtype=st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64]),
)
def test_save_field_records_shape_dtype_and_checksum(
    tmp_path_factory: pytest.TempPathFactory, shape: list[int], dtype: type
) -> None:
    folder = tmp_path_factory.mktemp("field")
    array: np.ndarray = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    entry = save_field(folder, "x", array, shown_in=Path("/final"))
    data = (folder / "x.pt").read_bytes()
    assert entry == {
        "shape": list(shape),
        "dtype": str(np.dtype(dtype)),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
