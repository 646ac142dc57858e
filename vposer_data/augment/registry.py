"""The one registry of augmentations: name, parameters, fields read / added / changed,
whether it draws at random, and the function that applies it.

Torch-free: settings, the command line and the folder identity read it without loading torch.
The functions live in :mod:`vposer_data.augment.ops` and are looked up by name when applied.
Configuration is a list of names or mappings, e.g. ``["mirror", {"name": "noise", "sigma":
0.02}, "matrot"]``, normalized by :func:`parse_augmentations` into hashable
:class:`AugmentSpec` values with every parameter filled in (so that a folder's identity changes
when a default does).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vposer_data.errors import ConfigError
from vposer_data.fields import (
    BETAS,
    GENDER,
    JOINTS,
    POSE_BODY,
    POSE_BODY_MATROT,
    ROOT_ORIENT,
    SEQ_ID,
    TRANS,
    field,
    made_by,
    pose_fields,
)
from vposer_data.skeleton import BODY_JOINT_COUNT, NUM_JOINTS

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATIONS",
    "JOINT_SETS",
    "MATROT_FIELD",
    "AugmentSpec",
    "Augmentation",
    "augmentations_table",
    "is_random",
    "output_fields",
    "parse_augmentations",
]

#: ``joints``' ``set``: the 22 body joints, or every joint of the family (24, 52, 55).
JOINT_SETS = ("body", "all")

#: The field ``matrot`` adds (declared in :mod:`vposer_data.fields`).
MATROT_FIELD = POSE_BODY_MATROT

Check = Callable[[str, str, Any], Any]


# --------------------------------------------------------------------------- parameter checks


def _check_real(name: str, key: str, value: Any, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not low <= float(value) <= high
    ):
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ConfigError(
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
    valid = ", ".join(pose_fields())
    if not isinstance(fields, Sequence) or not fields:
        raise ConfigError(
            f"augmentation {name!r}: parameter {key!r} must be a non-empty list of pose "
            f"fields ({valid}), got {value!r}"
        )
    for item in fields:
        if item not in pose_fields():
            raise ConfigError(
                f"augmentation {name!r}: {item!r} in {key!r} is not a pose field; "
                f"valid fields: {valid}"
            )
    if len(set(fields)) != len(fields):
        raise ConfigError(f"augmentation {name!r}: {key!r} lists a field twice: {value!r}")
    return tuple(fields)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Augmentation:
    """One named augmentation.

    Attributes:
        name: its registry name.
        summary: one line for help texts.
        params: parameter -> (default, check); a check returns the normalized value or raises
            ConfigError naming the augmentation, the parameter and the value.
        reads: fields it needs.
        adds: fields it adds, given its parameters; None (the default): the derived fields
            :mod:`vposer_data.fields` declares as made by it.
        changes_poses: it changes pose values (so it must come before ``matrot``).
        random: whether it draws at random, given its parameters.
        function: the name of its function in :mod:`vposer_data.augment.ops`.
        needs_clips: it works on clips only (``sampling="clips"``); its function then also
            receives ``fps``, the clips' rate.
        needs_body_model: it needs the user's body models (``body_model_dir``); its function
            then also receives ``body``, the split's models (:mod:`vposer_data.augment.joints`).
        widths: for fields it adds whose width the input decides, that width given its
            parameters and the split's body-model families (``joints``: the joint count).
        takes_rotation_logs: it turns rotation matrices back into axis-angle
            (:func:`vposer_data.rotations.matrot_to_aa`, from roma, whose import takes about
            a second): Stage II then imports it once before forking its workers.
    """

    name: str
    summary: str
    params: Mapping[str, tuple[Any, Check]]
    reads: tuple[str, ...]
    changes_poses: bool
    random: Callable[[Mapping[str, Any]], bool]
    function: str
    needs_clips: bool = False
    adds: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    needs_body_model: bool = False
    widths: Callable[[Mapping[str, Any], Sequence[str]], dict[str, int]] | None = None
    takes_rotation_logs: bool = False

    def added(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The fields it adds with these parameters."""
        return self.adds(params) if self.adds is not None else made_by(self.name)

    @property
    def from_source(self) -> bool:
        """Its fields are labels of the source motion, made by Stage I (:mod:`vposer_data.
        fields` says so): pose-changing augmentations may follow it in the list."""
        made = made_by(self.name)
        return bool(made) and all(field(name).from_source for name in made)


def _suffixed(suffix: str) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    """``adds`` of a representation: ``<field>_<suffix>`` for each of its ``fields``."""

    def adds(params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"{name}_{suffix}" for name in params["fields"])

    return adds


def _check_joint_set(name: str, key: str, value: Any) -> str:
    if value not in JOINT_SETS:
        raise ConfigError(
            f"augmentation {name!r}: parameter {key!r} must be one of {', '.join(JOINT_SETS)} "
            f"(the 22 body joints, or every joint of the family), got {value!r}"
        )
    return str(value)


def _joint_count(params: Mapping[str, Any], families: Sequence[str]) -> dict[str, int]:
    """``joints``' width: 22 for the body set; every joint of the split's one family for
    ``all`` (a split of several families is refused before any stage runs)."""
    if params["set"] == "body" or not families:
        return {JOINTS: BODY_JOINT_COUNT}
    counts = {NUM_JOINTS[family] for family in families}
    if len(counts) > 1:
        raise ConfigError(f"joints with set='all' over families {sorted(set(families))}")
    return {JOINTS: counts.pop()}


def _always(params: Mapping[str, Any]) -> bool:
    return True


def _never(params: Mapping[str, Any]) -> bool:
    return False


_DECLARED = (
    Augmentation(
        "matrot",
        "adds `pose_body_matrot` (N, 189): each body joint's 3x3 rotation matrix, row by row",
        {},
        (POSE_BODY,),
        changes_poses=False,
        random=_never,
        function="matrot",
    ),
    Augmentation(
        "noise",
        "Gaussian noise sigma*N(0,1) on `fields` (default pose_body, sigma 0.01)",
        {"fields": ((POSE_BODY,), _check_pose_fields), "sigma": (0.01, _check_sigma)},
        (),
        changes_poses=True,
        random=lambda p: p["sigma"] > 0,
        function="noise",
    ),
    Augmentation(
        "remove_zrot",
        "removes the root's rotation about the vertical axis",
        {},
        (ROOT_ORIENT,),
        changes_poses=True,
        random=_never,
        function="remove_zrot",
        takes_rotation_logs=True,
    ),
    Augmentation(
        "random_zrot",
        "rotates each sample about the vertical axis by an angle drawn in [0, 2 pi)",
        {},
        (ROOT_ORIENT,),
        changes_poses=True,
        random=_always,
        function="random_zrot",
        takes_rotation_logs=True,
    ),
    Augmentation(
        "mirror",
        "swaps left and right (joint pairs, hands, eyes; trans x) with probability p; the "
        "default `p=1` mirrors every sample",
        {"p": (1.0, _check_probability)},
        (),
        changes_poses=True,
        random=lambda p: 0 < p["p"] < 1,
        function="mirror",
    ),
    Augmentation(
        "rot6d",
        "adds `<field>_rot6d` for each of `fields` (default pose_body): per joint the first two "
        "columns of its rotation matrix, [R00, R10, R20, R01, R11, R21]",
        {"fields": ((POSE_BODY,), _check_pose_fields)},
        (),
        changes_poses=False,
        random=_never,
        function="rot6d",
        adds=_suffixed("rot6d"),
    ),
    Augmentation(
        "quat",
        "adds `<field>_quat` for each of `fields` (default pose_body): per joint a unit "
        "quaternion (w, x, y, z) with w >= 0",
        {"fields": ((POSE_BODY,), _check_pose_fields)},
        (),
        changes_poses=False,
        random=_never,
        function="quat",
        adds=_suffixed("quat"),
    ),
    Augmentation(
        "velocities",
        "clips: adds `trans_vel` (m/s) and `root_angvel` (rad/s, world frame), central "
        "differences at the clip rate, one-sided at the ends",
        {},
        (ROOT_ORIENT, TRANS),
        changes_poses=False,
        random=_never,
        function="velocities",
        needs_clips=True,
        takes_rotation_logs=True,
    ),
    Augmentation(
        "joints",
        "adds `joints` (N, J, 3), metres, world frame: the posed joints of the user's body "
        "model (`body_model_dir`) for the served poses, `trans` and all betas; `set` body: the "
        "22 body joints, all: every joint of the family (SMPL 24, SMPL+H 52, SMPL-X 55)",
        {"set": ("body", _check_joint_set)},
        (ROOT_ORIENT, POSE_BODY, TRANS, BETAS, GENDER, SEQ_ID),
        changes_poses=False,
        random=_never,
        function="joints",
        needs_body_model=True,
        widths=_joint_count,
    ),
    Augmentation(
        "contacts",
        "adds `contacts` (N, 4) uint8 (left_ankle, left_foot, right_ankle, right_foot) and "
        "`floor_z` (N,), metres: labels of the source motion at its own rate, thresholds in "
        "m/s and m; `mirror` swaps left and right",
        {},
        (),
        changes_poses=False,
        random=_never,
        function="contacts",
        needs_body_model=True,
    ),
)

#: Every augmentation, by name.
AUGMENTATIONS: dict[str, Augmentation] = {a.name: a for a in _DECLARED}


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

    @property
    def augmentation(self) -> Augmentation:
        return AUGMENTATIONS[self.name]

    @property
    def random(self) -> bool:
        """Whether it draws at random with these parameters."""
        return self.augmentation.random(dict(self.params))


#: What ``None`` means: body rotation matrices only, so every pose is a source frame.
DEFAULT_AUGMENTATIONS: tuple[AugmentSpec, ...] = (AugmentSpec("matrot"),)


def _parse_one(item: Any, position: int) -> AugmentSpec:
    if isinstance(item, AugmentSpec):
        item = item.as_dict()
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"augmentation #{position} must be a name, a mapping with a 'name' or an "
            f"AugmentSpec, got {item!r}"
        )
    valid_names = ", ".join(sorted(AUGMENTATIONS))
    name = item.get("name")
    if not isinstance(name, str) or name not in AUGMENTATIONS:
        raise ConfigError(
            f"unknown augmentation {name!r} (#{position}); valid names: {valid_names}"
        )
    declared = AUGMENTATIONS[name].params
    given = {k: v for k, v in item.items() if k != "name"}
    unknown = sorted(set(given) - set(declared), key=str)
    if unknown:
        valid_params = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"augmentation {name!r} has no parameter {unknown[0]!r}; "
            f"valid parameters: {valid_params}"
        )
    params = {
        key: check(name, key, given.get(key, default)) for key, (default, check) in declared.items()
    }
    return AugmentSpec(name, tuple(sorted(params.items())))


def parse_augmentations(
    value: Sequence[str | Mapping[str, Any] | AugmentSpec] | str | Mapping[str, Any] | None,
) -> tuple[AugmentSpec, ...]:
    """Validate and normalize an augmentation configuration.

    ``None`` means the default ``(matrot,)``; an empty list means no augmentation; a single
    name or mapping is read as a one-item list. Raises :class:`ConfigError` (a ValueError),
    naming the bad value, on an unknown name or parameter, a bad parameter value, or a
    pose-changing augmentation listed after ``matrot`` (which would leave
    ``pose_body_matrot`` stale; likewise any field an augmentation derives).
    """
    if value is None:
        return DEFAULT_AUGMENTATIONS
    if isinstance(value, (str, Mapping, AugmentSpec)):
        value = [value]
    if not isinstance(value, Sequence):
        raise ConfigError(f"augmentations must be a list, got {value!r}")
    specs = tuple(_parse_one(item, i) for i, item in enumerate(value))
    derived_at: int | None = None
    for i, spec in enumerate(specs):
        if spec.augmentation.changes_poses and derived_at is not None:
            deriving = specs[derived_at].name
            raise ConfigError(
                f"augmentation {spec.name!r} (#{i}) changes poses but is listed after "
                f"{deriving!r} (#{derived_at}), whose derived fields would be stale. List "
                f"pose-changing augmentations before {deriving!r}."
            )
        if (
            derived_at is None
            and not spec.augmentation.from_source
            and spec.augmentation.added(dict(spec.params))
        ):
            derived_at = i
    return specs


def is_random(specs: Sequence[AugmentSpec]) -> bool:
    """Whether any of ``specs`` draws at random (else every pass would be the same)."""
    return any(spec.random for spec in specs)


def output_fields(
    input_fields: Sequence[str], specs: Sequence[AugmentSpec | str | Mapping[str, Any]]
) -> list[str]:
    """The fields a batch with ``input_fields`` has after ``specs``: the inputs in order,
    then the fields the augmentations add. Raises ConfigError if one needs a missing field."""
    fields = list(input_fields)
    for spec in parse_augmentations(list(specs)):
        augmentation = spec.augmentation
        for needed in augmentation.reads:
            if needed not in fields:
                raise ConfigError(
                    f"augmentation {spec.name!r} needs field {needed!r}; fields are {fields}"
                )
        fields.extend(f for f in augmentation.added(dict(spec.params)) if f not in fields)
    return fields


def augmentations_table() -> str:
    """The documentation's table of augmentations (Markdown), made from the registry."""
    rows = [
        "| augmentation | parameters (default) | applies to | what it does |",
        "|---|---|---|---|",
    ]
    for augmentation in AUGMENTATIONS.values():
        params = (
            ", ".join(
                f"`{key}` ({', '.join(default) if isinstance(default, tuple) else default})"
                for key, (default, _) in augmentation.params.items()
            )
            or "none"
        )
        splits = "`augment_splits`" if augmentation.changes_poses else "every split"
        summary = augmentation.summary.replace("|", "\\|")
        rows.append(f"| `{augmentation.name}` | {params} | {splits} | {summary} |")
    return "\n".join(rows)
