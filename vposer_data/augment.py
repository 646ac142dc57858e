"""Named, pure augmentations on a batch of Stage I samples (Stage II of the pipeline).

A batch is a ``dict`` of tensors, each ``(n, width)``; poses are axis-angle (``root_orient``
3, ``pose_body`` 63, ``pose_hand`` 90, ``pose_jaw`` 3, ``pose_eye`` 6). Every augmentation
is a function ``fn(batch, generator, **params) -> Batch`` that never mutates its input: it
returns a new dict in which the fields it does not touch are the same tensors as before and
the pose fields it writes are float32. Randomness comes only from the given CPU
:class:`torch.Generator`, so a seed fixes the output.

Configuration is a list of names or mappings, e.g. ``["mirror", {"name": "noise",
"sigma": 0.02}, "matrot"]``, normalized by :func:`parse_augmentations` into hashable
:class:`AugmentSpec` values with every parameter filled in (so that a configuration hash
changes when a default does).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vposer_data.rotations import aa_to_matrot, matrot_to_aa, rotz, yaw_sxyz

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATIONS",
    "MATROT_FIELD",
    "POSE_FIELDS",
    "AugmentSpec",
    "Batch",
    "apply_augmentations",
    "matrot",
    "mirror",
    "noise",
    "output_fields",
    "parse_augmentations",
    "random_zrot",
    "remove_zrot",
]

Batch = dict[str, torch.Tensor]

#: Axis-angle pose fields and their widths (3 values per joint).
POSE_FIELDS: dict[str, int] = {
    "root_orient": 3,
    "pose_body": 63,
    "pose_hand": 90,
    "pose_jaw": 3,
    "pose_eye": 6,
}
#: The field ``matrot`` adds: 21 body joints x row-major 3x3 = 189 columns.
MATROT_FIELD = "pose_body_matrot"
NUM_BODY_JOINTS = 21


# --------------------------------------------------------------------------- helpers


def _batch_size(batch: Mapping[str, torch.Tensor]) -> int:
    sizes = {name: int(t.shape[0]) for name, t in batch.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch fields disagree on the number of samples: {sizes}")
    return next(iter(sizes.values()), 0)


def _require(batch: Mapping[str, torch.Tensor], field: str, augmentation: str) -> torch.Tensor:
    if field not in batch:
        raise ValueError(
            f"augmentation {augmentation!r} needs field {field!r}; batch has {sorted(batch)}"
        )
    x = batch[field]
    width = POSE_FIELDS.get(field)
    if width is not None and (x.ndim != 2 or x.shape[1] != width):
        raise ValueError(
            f"augmentation {augmentation!r}: field {field!r} should be (n, {width}), "
            f"got {tuple(x.shape)}"
        )
    return x


def _rotate_root(root_orient: torch.Tensor, Rz: torch.Tensor) -> torch.Tensor:
    """Axis-angle of ``Rz @ R(root_orient)``, computed in float64, returned float32."""
    R = aa_to_matrot(root_orient.to(torch.float64))
    return matrot_to_aa(Rz.to(R.device) @ R).to(torch.float32)


# --------------------------------------------------------------------------- augmentations


def matrot(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """Add ``pose_body_matrot`` ``(n, 189)``: joint ``j``'s 3x3 matrix (row-major) at
    columns ``9*j : 9*j+9``, from ``pose_body``. Computed in float64, stored float32."""
    pose_body = _require(batch, "pose_body", "matrot")
    n = pose_body.shape[0]
    R = aa_to_matrot(pose_body.to(torch.float64).reshape(n, NUM_BODY_JOINTS, 3))
    out = dict(batch)
    out[MATROT_FIELD] = R.reshape(n, NUM_BODY_JOINTS * 9).to(torch.float32)
    return out


def noise(
    batch: Batch,
    generator: torch.Generator,
    fields: Sequence[str] = ("pose_body",),
    sigma: float = 0.01,
) -> Batch:
    """Add Gaussian noise ``sigma * N(0, 1)`` to each of ``fields`` present in the batch."""
    out = dict(batch)
    for field in fields:
        if field not in batch:
            continue
        x = batch[field].to(torch.float32)
        if sigma == 0:
            out[field] = x
            continue
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        out[field] = x + sigma * eps.to(x.device)
    return out


def remove_zrot(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """Remove the root's rotation about the vertical axis (the original VPoser remove_Zrot).

    With ``R = Rz(g) Ry(b) Rx(a)`` (static xyz Euler angles), ``root_orient`` becomes the
    axis-angle of ``Rz(-g) @ R = Ry(b) Rx(a)``. ``trans`` and the other fields are unchanged.
    """
    root = _require(batch, "root_orient", "remove_zrot")
    R = aa_to_matrot(root.to(torch.float64))
    out = dict(batch)
    out["root_orient"] = matrot_to_aa(rotz(-yaw_sxyz(R)) @ R).to(torch.float32)
    return out


def random_zrot(batch: Batch, generator: torch.Generator) -> Batch:
    """Rotate each sample about the world's vertical (z) axis by ``theta ~ U[0, 2 pi)``:
    ``root_orient`` becomes ``aa(Rz(theta) @ R)`` and ``trans`` (if present) ``Rz(theta) @ trans``.
    """
    root = _require(batch, "root_orient", "random_zrot")
    n = root.shape[0]
    theta = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
    Rz = rotz(theta)
    out = dict(batch)
    out["root_orient"] = _rotate_root(root, Rz)
    if "trans" in batch:
        trans = batch["trans"]
        rotated = (Rz.to(trans.device) @ trans.to(torch.float64).unsqueeze(-1)).squeeze(-1)
        out["trans"] = rotated.to(trans.dtype if trans.is_floating_point() else torch.float32)
    return out


# Left/right pairs among SMPL joints 1..21 (pose_body), as 0-based indices into pose_body:
# hip (1,2), knee (4,5), ankle (7,8), foot (10,11), collar (13,14), shoulder (16,17),
# elbow (18,19), wrist (20,21).
_BODY_LR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


def _joint_table(
    num_joints: int, pairs: Sequence[tuple[int, int]]
) -> tuple[list[int], list[float]]:
    """Column permutation and signs that swap the joint ``pairs`` and reflect every joint."""
    joint_perm = list(range(num_joints))
    for a, b in pairs:
        joint_perm[a], joint_perm[b] = joint_perm[b], joint_perm[a]
    columns = [3 * joint_perm[j] + k for j in range(num_joints) for k in range(3)]
    # Reflection M = diag(-1, 1, 1) across the sagittal plane maps R to M R M, i.e. the
    # axis-angle (x, y, z) to (x, -y, -z).
    return columns, [1.0, -1.0, -1.0] * num_joints


_MIRROR_TABLES: dict[str, tuple[list[int], list[float]]] = {
    "root_orient": _joint_table(1, ()),
    "pose_body": _joint_table(21, [(a - 1, b - 1) for a, b in _BODY_LR_PAIRS]),
    "pose_hand": _joint_table(30, [(j, j + 15) for j in range(15)]),  # left 15, right 15
    "pose_jaw": _joint_table(1, ()),
    "pose_eye": _joint_table(2, [(0, 1)]),  # left eye, right eye
    "trans": ([0, 1, 2], [-1.0, 1.0, 1.0]),  # x -> -x
}


def mirror(batch: Batch, generator: torch.Generator, p: float = 1.0) -> Batch:
    """Flip left and right (across the body's sagittal plane) with probability ``p`` per sample.

    Body joint pairs (hips, knees, ankles, feet, collars, shoulders, elbows, wrists), the two
    hands and the two eyes are swapped, and every axis-angle ``(x, y, z)`` becomes
    ``(x, -y, -z)`` (``root_orient`` and ``pose_jaw`` too); ``trans`` x becomes ``-x``.
    Other fields pass through. Exact (a permutation and sign flips): mirroring twice with
    ``p = 1`` is the identity.
    """
    n = _batch_size(batch)
    flip = (torch.rand(n, generator=generator, dtype=torch.float64) < p).unsqueeze(-1)
    out = dict(batch)
    for field, (columns, signs) in _MIRROR_TABLES.items():
        if field not in batch:
            continue
        x = _require(batch, field, "mirror")
        if field in POSE_FIELDS:
            x = x.to(torch.float32)
        elif x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"augmentation 'mirror': field {field!r} should be (n, 3)")
        index = torch.tensor(columns, device=x.device)
        sign = torch.tensor(signs, dtype=x.dtype, device=x.device)
        mirrored = x.index_select(1, index) * sign
        out[field] = torch.where(flip.to(x.device), mirrored, x)
    return out


#: Registry: name -> fn(batch, generator, **params) -> new Batch.
AUGMENTATIONS: dict[str, Callable[..., Batch]] = {
    "matrot": matrot,
    "mirror": mirror,
    "noise": noise,
    "random_zrot": random_zrot,
    "remove_zrot": remove_zrot,
}


# --------------------------------------------------------------------------- configuration


def _check_real(name: str, key: str, value: Any, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not low <= float(value) <= high
    ):
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(
            f"augmentation {name!r}: parameter {key!r} must be a finite number {bounds}, "
            f"got {value!r}"
        )
    return float(value)


def _check_sigma(name: str, key: str, value: Any) -> float:
    return _check_real(name, key, value, 0.0, math.inf)


def _check_probability(name: str, key: str, value: Any) -> float:
    return _check_real(name, key, value, 0.0, 1.0)


def _check_pose_fields(name: str, key: str, value: Any) -> tuple[str, ...]:
    fields = (value,) if isinstance(value, str) else value
    valid = ", ".join(POSE_FIELDS)
    if not isinstance(fields, Sequence) or not fields:
        raise ValueError(
            f"augmentation {name!r}: parameter {key!r} must be a non-empty list of pose "
            f"fields ({valid}), got {value!r}"
        )
    for field in fields:
        if field not in POSE_FIELDS:
            raise ValueError(
                f"augmentation {name!r}: {field!r} in {key!r} is not a pose field; "
                f"valid fields: {valid}"
            )
    if len(set(fields)) != len(fields):
        raise ValueError(f"augmentation {name!r}: {key!r} lists a field twice: {value!r}")
    return tuple(fields)


@dataclass(frozen=True)
class _Schema:
    params: dict[str, tuple[Any, Callable[[str, str, Any], Any]]]  # key -> (default, check)
    changes_poses: bool
    requires: tuple[str, ...] = ()
    adds: tuple[str, ...] = ()


_SCHEMAS: dict[str, _Schema] = {
    "matrot": _Schema({}, changes_poses=False, requires=("pose_body",), adds=(MATROT_FIELD,)),
    "mirror": _Schema({"p": (1.0, _check_probability)}, changes_poses=True),
    "noise": _Schema(
        {"fields": (("pose_body",), _check_pose_fields), "sigma": (0.01, _check_sigma)},
        changes_poses=True,
    ),
    "random_zrot": _Schema({}, changes_poses=True, requires=("root_orient",)),
    "remove_zrot": _Schema({}, changes_poses=True, requires=("root_orient",)),
}


@dataclass(frozen=True)
class AugmentSpec:
    """One configured augmentation: its registry name and all its parameters, sorted."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` with plain JSON-able values (tuples as lists)."""
        return {
            "name": self.name,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params},
        }


#: What ``None`` means: body rotation matrices only, so every pose is a source frame.
DEFAULT_AUGMENTATIONS: tuple[AugmentSpec, ...] = (AugmentSpec("matrot"),)


def _parse_one(item: Any, position: int) -> AugmentSpec:
    if isinstance(item, AugmentSpec):
        item = item.as_dict()
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise ValueError(
            f"augmentation #{position} must be a name, a mapping with a 'name' or an "
            f"AugmentSpec, got {item!r}"
        )
    valid_names = ", ".join(sorted(AUGMENTATIONS))
    name = item.get("name")
    if not isinstance(name, str) or name not in _SCHEMAS:
        raise ValueError(f"unknown augmentation {name!r} (#{position}); valid names: {valid_names}")
    schema = _SCHEMAS[name]
    given = {k: v for k, v in item.items() if k != "name"}
    unknown = sorted(set(given) - set(schema.params), key=str)
    if unknown:
        valid_params = ", ".join(sorted(schema.params)) or "none"
        raise ValueError(
            f"augmentation {name!r} has no parameter {unknown[0]!r}; "
            f"valid parameters: {valid_params}"
        )
    params = {
        key: check(name, key, given.get(key, default))
        for key, (default, check) in schema.params.items()
    }
    return AugmentSpec(name, tuple(sorted(params.items())))


def parse_augmentations(
    value: Sequence[str | Mapping[str, Any] | AugmentSpec] | str | Mapping[str, Any] | None,
) -> tuple[AugmentSpec, ...]:
    """Validate and normalize an augmentation configuration.

    ``None`` means the default ``(matrot,)``; an empty list means no augmentation; a single
    name or mapping is read as a one-item list. Raises :class:`ValueError`, naming the bad
    value, on an unknown name or parameter, a bad parameter value, or a pose-changing
    augmentation listed after ``matrot`` (which would leave ``pose_body_matrot`` stale).
    """
    if value is None:
        return DEFAULT_AUGMENTATIONS
    if isinstance(value, (str, Mapping, AugmentSpec)):
        value = [value]
    if not isinstance(value, Sequence):
        raise ValueError(f"augmentations must be a list, got {value!r}")
    specs = tuple(_parse_one(item, i) for i, item in enumerate(value))
    matrot_at: int | None = None
    for i, spec in enumerate(specs):
        if spec.name == "matrot" and matrot_at is None:
            matrot_at = i
        elif matrot_at is not None and _SCHEMAS[spec.name].changes_poses:
            raise ValueError(
                f"augmentation {spec.name!r} (#{i}) changes poses but is listed after "
                f"'matrot' (#{matrot_at}): pose_body_matrot would be stale. List "
                f"pose-changing augmentations before 'matrot'."
            )
    return specs


def apply_augmentations(
    batch: Batch, specs: Sequence[AugmentSpec], generator: torch.Generator
) -> Batch:
    """Apply ``specs`` in order (validated again) and return a new batch; ``batch`` is not
    modified."""
    out = dict(batch)
    for spec in parse_augmentations(list(specs)):
        out = AUGMENTATIONS[spec.name](out, generator, **dict(spec.params))
    return out


def output_fields(
    input_fields: Sequence[str], specs: Sequence[AugmentSpec | str | Mapping[str, Any]]
) -> list[str]:
    """The fields a batch with ``input_fields`` has after ``specs``: the inputs in order,
    then the fields the augmentations add. Raises ValueError if one needs a missing field."""
    fields = list(input_fields)
    for spec in parse_augmentations(list(specs)):
        schema = _SCHEMAS[spec.name]
        for needed in schema.requires:
            if needed not in fields:
                raise ValueError(
                    f"augmentation {spec.name!r} needs field {needed!r}; fields are {fields}"
                )
        fields.extend(f for f in schema.adds if f not in fields)
    return fields
