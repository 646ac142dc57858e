"""The field vocabulary is the one place a field is declared: the augmentation registry, the
stages and the dataset take names, layouts and order from it."""

from __future__ import annotations

import pytest

from vposer_data.augment.registry import AUGMENTATIONS, AugmentSpec, parse_augmentations
from vposer_data.dataset import DEFAULT_FIELDS
from vposer_data.fields import FIELDS, field, made_by, stage1_fields
from vposer_data.stages.stage3 import REQUIRED_FIELDS


def test_every_derived_field_is_added_by_its_augmentation() -> None:
    for declared in FIELDS.values():
        if declared.derived:
            assert declared.made_by in AUGMENTATIONS, declared.name
            assert declared.name in AUGMENTATIONS[declared.made_by].added({}), declared.name


def test_every_added_field_is_declared() -> None:
    for augmentation in AUGMENTATIONS.values():
        spec = parse_augmentations([augmentation.name])[0]
        assert isinstance(spec, AugmentSpec)
        for name in augmentation.added(dict(spec.params)):
            assert field(name).name == name


def test_orders_are_those_outputs_had() -> None:
    assert DEFAULT_FIELDS == (
        "root_orient",
        "pose_body",
        "pose_body_matrot",
        "pose_hand",
        "pose_jaw",
        "pose_eye",
    )
    assert REQUIRED_FIELDS == ("root_orient", "pose_body")
    frames = ["root_orient", "pose_body", "pose_hand", "trans", "dmpls"]
    provenance = ["betas", "gender", "seq_id", "frame_id"]
    assert stage1_fields(frames, canonical=False) == [*frames, *provenance]
    assert stage1_fields(frames[::-1], canonical=True) == [
        *frames,
        "canon_yaw",
        "canon_offset",
        *provenance,
    ]
    assert made_by("velocities") == ("trans_vel", "root_angvel")


@pytest.mark.parametrize(
    ("name", "clip_frames", "shape"),
    [
        ("pose_body", None, (63,)),
        ("pose_body", 16, (16, 63)),
        ("frame_id", 16, (16,)),
        ("gender", 16, ()),
        ("canon_offset", 16, (3,)),
        ("pose_hand_rot6d", 8, (8, 180)),
        ("betas", None, (10,)),
    ],
)
def test_row_shapes(name: str, clip_frames: int | None, shape: tuple[int, ...]) -> None:
    assert field(name).row_shape(clip_frames, width=10) == shape


def test_a_width_left_to_the_input_needs_one() -> None:
    with pytest.raises(ValueError, match="betas"):
        field("betas").row_shape(None)
