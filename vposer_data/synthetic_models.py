"""Made-up SMPL-family model files, deterministic by seed, for the tests and the demo.

The real models are licensed and never shipped; these have their keys, shapes and dtypes and a
plausible human-sized skeleton, and nothing of the licensed data. Like the real templates they
are y-up (AMASS's ``root_orient`` turns them upright in its z-up world), the model's left is +x
and its front +z. Per family and gender:

- rest joints from a table of bone vectors (a 1.0 / 0.93 / 0.965 scale for male, female,
  neutral), vertices scattered around the joint each is assigned to;
- ``J_regressor`` rows are convex weights over some of a joint's own vertices, whose weighted
  mean is exactly the joint (so ``J_regressor · v_template`` is the designed skeleton);
- ``shapedirs``: direction 0 a taller/shorter body, the next ones random per-joint moves of a
  few millimetres to centimetres plus per-vertex noise; beyond the first 16 shape directions
  (the betas AMASS stores) they are zero, and SMPL-X's 300 + 100 layout keeps its expression
  directions (on head vertices) at 300;
- ``kintree_table`` with the root's parent stored as 2**32 - 1, as the real files store it;
  ``weights`` (own joint and parent), mostly-zero ``posedirs``, ``f``; and the keys the smplx
  package's loaders read (hand PCA, landmarks) in its own layout.

Mostly-zero arrays keep the compressed files small (an SMPL-X file is 10,475 x 3 x 400 floats).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vposer_data.body_model import (
    FAMILIES,
    GENDERS,
    JOINT_NAMES_BY_FAMILY,
    JOINT_PARENTS_BY_FAMILY,
    NUM_JOINTS,
    NUM_VERTICES,
)

__all__ = [
    "LAYOUTS",
    "ensure_body_models",
    "model_arrays",
    "model_path",
    "write_body_models",
    "write_model_npz",
]

#: "amass": ``<family>/<gender>/model.npz``; "smplx": ``<family>/<FAMILY>_<GENDER>.npz``.
LAYOUTS = ("amass", "smplx")
#: Shape directions per family, as the files AMASS pairs with its motions have them.
SHAPEDIRS_WIDTH = {"smpl": 300, "smplh": 16, "smplx": 400}
#: Of those, the directions that are not zero (AMASS motions carry 16 betas).
NONZERO_SHAPE_DIRECTIONS = 16
NUM_FACES = {"smpl": 13776, "smplh": 13776, "smplx": 20908}
GENDER_SCALE = {"male": 1.0, "female": 0.93, "neutral": 0.965}
_ROOT_PARENT = 4294967295  # -1 as the real files' uint32 kintree stores it

#: Bone vector from the parent (pelvis: its position), metres, y up, left +x, front +z; right
#: joints mirror the left ones.
_BONES: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, -0.23, 0.02),
    "left_hip": (0.06, -0.09, -0.01),
    "spine1": (0.0, 0.11, -0.02),
    "left_knee": (0.04, -0.38, 0.0),
    "spine2": (0.0, 0.13, 0.01),
    "left_ankle": (-0.01, -0.40, -0.04),
    "spine3": (0.0, 0.06, 0.0),
    "left_foot": (0.02, -0.06, 0.12),
    "neck": (0.0, 0.21, -0.03),
    "left_collar": (0.07, 0.12, -0.01),
    "head": (0.0, 0.09, 0.05),
    "left_shoulder": (0.11, 0.03, -0.01),
    "left_elbow": (0.26, -0.01, -0.02),
    "left_wrist": (0.25, 0.01, 0.0),
    "left_hand": (0.09, -0.01, -0.01),
    "jaw": (0.0, -0.02, 0.02),
    "left_eye": (0.03, 0.06, 0.09),
}
_FINGER_BASES = {
    "index": (0.09, 0.005, 0.03),
    "middle": (0.095, 0.0, 0.01),
    "pinky": (0.075, -0.01, -0.035),
    "ring": (0.085, -0.005, -0.015),
    "thumb": (0.025, -0.015, 0.03),
}
_PHALANX = (0.035, 0.0, 0.0)
_THUMB_PHALANX = (0.025, -0.005, 0.02)


def _bone(name: str) -> np.ndarray:
    """The bone vector of a joint, mirrored in x for right joints."""
    side, _, base = name.partition("_")
    if side not in ("left", "right"):
        side, base = "", name
    key = f"left_{base}" if side else base
    if key in _BONES:
        vector = np.array(_BONES[key])
    else:  # a finger joint: left_index1 ...
        finger, k = base[:-1], int(base[-1])
        if k == 1:
            vector = np.array(_FINGER_BASES[finger])
        else:
            vector = np.array(_THUMB_PHALANX if finger == "thumb" else _PHALANX)
    if side == "right":
        vector[0] = -vector[0]
    return vector


def _skeleton(family: str, gender: str) -> np.ndarray:
    """Rest joint positions ``(J, 3)``."""
    names, parents = JOINT_NAMES_BY_FAMILY[family], JOINT_PARENTS_BY_FAMILY[family]
    joints = np.zeros((len(names), 3))
    for j, name in enumerate(names):
        joints[j] = _bone(name) * GENDER_SCALE[gender] + (joints[parents[j]] if j else 0.0)
    return joints


def model_arrays(
    family: str, gender: str, seed: int = 0, layout: str = "amass"
) -> dict[str, np.ndarray]:
    """The arrays of one made-up model file, deterministic by ``(seed, family, gender)``."""
    if family not in FAMILIES or gender not in GENDERS or layout not in LAYOUTS:
        raise ValueError(f"no synthetic model for {family!r} {gender!r} {layout!r}")
    rng = np.random.default_rng([seed, FAMILIES.index(family), GENDERS.index(gender)])
    names, parents = JOINT_NAMES_BY_FAMILY[family], JOINT_PARENTS_BY_FAMILY[family]
    num_joints, num_vertices = NUM_JOINTS[family], NUM_VERTICES[family]
    joints = _skeleton(family, gender)
    small = np.array([("1" in n or "2" in n or "3" in n or "eye" in n) for n in names])
    spread = np.where(small, 0.008, 0.04)

    owner = np.arange(num_vertices) % num_joints  # the joint each vertex surrounds
    offsets = rng.normal(size=(num_vertices, 3)) * spread[owner, None]
    J_regressor = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):
        own = np.flatnonzero(owner == j)
        chosen = rng.choice(own, size=min(24, own.size), replace=False)
        weights = rng.uniform(0.2, 1.0, chosen.size)
        weights /= weights.sum()
        J_regressor[j, chosen] = weights
        offsets[own] -= weights @ offsets[chosen]  # the regressed joint is the joint itself
    v_template = joints[owner] + offsets

    width = SHAPEDIRS_WIDTH[family]
    shapedirs = np.zeros((num_vertices, 3, width))
    pelvis = joints[0]
    shapedirs[:, :, 0] = 0.04 * (v_template - pelvis)  # a taller body
    for s in range(1, NONZERO_SHAPE_DIRECTIONS):
        per_joint = rng.normal(size=(num_joints, 3)) * 0.012 / (1 + s / 6)
        shapedirs[:, :, s] = per_joint[owner] + rng.normal(size=(num_vertices, 3)) * 0.002
    if family == "smplx":  # expression directions after the shape ones, on the head
        first = 300 if width > 300 else 10
        face = np.isin(owner, [names.index(n) for n in ("head", "jaw", "left_eye", "right_eye")])
        shapedirs[face, :, first : first + 10] = rng.normal(size=(int(face.sum()), 3, 10)) * 0.003

    weights = np.zeros((num_vertices, num_joints))
    own_share = rng.uniform(0.6, 1.0, num_vertices)
    parent_of_owner = np.array([max(parents[j], 0) for j in owner])
    weights[np.arange(num_vertices), owner] = own_share
    weights[np.arange(num_vertices), parent_of_owner] += 1.0 - own_share

    posedirs = np.zeros((num_vertices, 3, 9 * (num_joints - 1)))
    moved = np.arange(0, num_vertices, 37)
    posedirs[moved] = rng.normal(size=(moved.size, 3, posedirs.shape[2])) * 0.004

    # triangles between three distinct vertices of one joint
    count, group = NUM_FACES[family], num_vertices // num_joints
    first_vertex = rng.integers(0, group, count)
    step_b = rng.integers(1, group, count)
    step_c = rng.integers(1, group - 1, count)
    step_c += step_c >= step_b
    corners = np.stack([first_vertex, first_vertex + step_b, first_vertex + step_c], axis=1)
    faces = ((corners % group) * num_joints + (np.arange(count) % num_joints)[:, None]).astype(
        np.uint32
    )

    kintree = np.stack([np.array(parents, dtype=np.int64), np.arange(num_joints)])
    kintree[0, 0] = _ROOT_PARENT
    arrays: dict[str, np.ndarray] = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "J_regressor": J_regressor,
        "kintree_table": kintree,
        "weights": weights,
        "posedirs": posedirs,
        "f": faces,
    }
    if layout == "amass":
        arrays["J"] = joints
        arrays["bs_style"] = np.array("lbs")
        arrays["bs_type"] = np.array("lrotmin")
    elif family in ("smplh", "smplx"):  # what the smplx package's loaders read
        for side in ("l", "r"):
            arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{side}"] = rng.normal(size=45) * 0.1
        if family == "smplx":
            head_faces = np.flatnonzero(np.isin(faces[:, 0] % num_joints, [15, 22]))
            arrays["lmk_faces_idx"] = rng.choice(head_faces, 51).astype(np.int64)
            arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), 51)
            arrays["dynamic_lmk_faces_idx"] = rng.choice(head_faces, (79, 17)).astype(np.int64)
            arrays["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), (79, 17))
            # as in the real files: an object array, which allow_pickle=False must not need
            arrays["joint2num"] = np.array({name: j for j, name in enumerate(names)})
    return arrays


_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def write_model_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a deflated ``.npz`` (level 1: these files are mostly zeros) with fixed
    timestamps, so the same arrays give the same bytes; atomically (temporary file, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=True)
            archive.writestr(info, buffer.getbuffer(), compresslevel=1)
    os.replace(tmp, path)


def model_path(root: str | Path, family: str, gender: str, layout: str) -> Path:
    """Where a layout puts a family's model of a gender under ``root``."""
    folder = Path(root) / family
    if layout == "amass":
        return folder / gender / "model.npz"
    if layout == "smplx":
        return folder / f"{family.upper()}_{gender.upper()}.npz"
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def write_body_models(
    root: str | Path,
    families: tuple[str, ...] = FAMILIES,
    genders: tuple[str, ...] = GENDERS,
    layouts: tuple[str, ...] = ("amass",),
    seed: int = 0,
) -> list[Path]:
    """Write made-up model files under ``root`` (compressed ``.npz``, identical bytes for the
    same arguments) and return their paths. The same family, gender and seed give the same
    model arrays in every layout (the smplx layout adds its loader's keys)."""
    written = []
    for family in families:
        for gender in genders:
            for layout in layouts:
                path = model_path(root, family, gender, layout)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_model_npz(path, model_arrays(family, gender, seed, layout))
                written.append(path)
    return written


def ensure_body_models(
    root: str | Path, families: tuple[str, ...] = FAMILIES, seed: int = 0
) -> list[Path]:
    """Write the made-up models of ``families`` (every gender, AMASS layout) that ``root``
    lacks; returns those written. A file there is whole (each is written under a temporary
    name and renamed), so it is reused: folders prepared with it stay valid."""
    written = []
    for family in families:
        for gender in GENDERS:
            if not model_path(root, family, gender, "amass").is_file():
                written += write_body_models(root, (family,), (gender,), seed=seed)
    return written
