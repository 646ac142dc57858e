"""The user's SMPL-family body models: what joints need of a model file, and posing them.

Joints are the posed joints of linear blend skinning: rest joints
``J = J_regressor · (v_template + shapedirs[..., :B] · betas)`` with every beta given, then
forward kinematics along the model's tree. Pose blend shapes move vertices, not joints, so no
vertex is ever posed: ``J_regressor · v_template`` and ``J_regressor · shapedirs`` are computed
once per model, and a frame costs one rotation per joint. Finding and reading the files (both
layouts, never running code) is :mod:`vposer_data.model_files`; joint names and trees are
:mod:`vposer_data.skeleton`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vposer_data.model_files import (
    FAMILIES,
    GENDERS,
    BodyModelError,
    BodyModelNotFoundError,
    ChumpyModelError,
    ModelUnpickler,
    candidate_paths,
    check_family,
    check_family_gender,
    find_model_file,
    read_model_arrays,
)
from vposer_data.skeleton import (
    BODY_JOINT_COUNT,
    JOINT_NAMES_BY_FAMILY,
    JOINT_PARENTS_BY_FAMILY,
    NUM_JOINTS,
    POSE_PARTS,
)
from vposer_data.work_buffers import work_buffer

__all__ = [
    "BODY_JOINT_COUNT",
    "FAMILIES",
    "GENDERS",
    "JOINT_NAMES_BY_FAMILY",
    "JOINT_PARENTS_BY_FAMILY",
    "NUM_JOINTS",
    "NUM_VERTICES",
    "POSE_PARTS",
    "BodyModel",
    "BodyModelError",
    "BodyModelNotFoundError",
    "ChumpyModelError",
    "ModelUnpickler",
    "assemble_pose",
    "body_joints",
    "candidate_paths",
    "find_model_file",
    "load_body_model",
    "posed_joints",
    "read_body_model",
    "read_model_arrays",
    "rest_joints",
    "rodrigues_components",
    "rotation_matrices",
    "shape_direction_count",
    "transpose_into",
]

NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}

#: The keys joints need; the other keys of a model file (weights, posedirs, f, ...) are not read.
_NEEDED_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")
#: Frames per block of forward kinematics: a block's rotations (2.5 MB for the 22 body joints in
#: float32, 16 MB for 55 joints in float64) stay near the core, in reused work buffers.
_FK_BLOCK = 4096
#: Angles per call of torch's sin and cos: under its grain size, so one thread computes them.
_TRIG_PIECE = 16384


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, eq=False)
class BodyModel:
    """What joints need of one model file, float64, read-only.

    ``shapedirs`` holds the shape directions only (SMPL-X's expression directions are dropped);
    ``joint_template = J_regressor · v_template`` and ``joint_shapedirs = J_regressor ·
    shapedirs`` are the rest joints' terms, so that no per-frame work touches a vertex.
    """

    family: str
    gender: str
    path: Path
    sha256: str
    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, S)
    J_regressor: np.ndarray  # (J, V), dense
    parents: np.ndarray  # (J,) int64, root -1
    joint_template: np.ndarray  # (J, 3)
    joint_shapedirs: np.ndarray  # (J, 3, S)

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_shape_directions(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES_BY_FAMILY[self.family]


def shape_direction_count(family: str, width: int) -> int:
    """How many of ``shapedirs``' ``width`` directions are shape (not expression) directions.

    SMPL and SMPL+H: all. SMPL-X files hold shape then expression directions: 300 + 100 in the
    current files (width above 300), 10 + 10 in the first release; as human_body_prior and the
    smplx package split them.
    """
    if family != "smplx":
        return width
    return 300 if width > 300 else min(width, 10)


def read_body_model(path: str | Path, family: str, gender: str) -> BodyModel:
    """Read and check one model file of ``family`` (the gender is recorded, not checked).

    Raises:
        BodyModelError: unreadable, or keys of shapes other than the family's.
    """
    check_family_gender(family, gender)
    path = Path(path)
    arrays = read_model_arrays(path, _NEEDED_KEYS)
    num_joints, num_vertices = NUM_JOINTS[family], NUM_VERTICES[family]

    def numeric(key: str, shape: tuple[int | None, ...], directions: bool = False) -> np.ndarray:
        value = arrays[key]
        if value.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
        ):
            expected = "(" + ", ".join("S" if s is None else str(s) for s in shape) + ")"
            raise BodyModelError(
                path,
                f"{key!r} has shape {value.shape}, expected {expected} for {family} "
                f"({num_joints} joints, {num_vertices} vertices): is it a {family} model?",
            )
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise BodyModelError(path, f"{key!r} has dtype {value.dtype}, expected numbers")
        if directions:  # only the shape directions are used (SMPL-X: not the expressions)
            value = value[:, :, : shape_direction_count(family, value.shape[2])]
        out = np.ascontiguousarray(value, dtype=np.float64)
        if not np.isfinite(out).all():
            raise BodyModelError(path, f"{key!r} holds NaN or infinite values")
        return out

    v_template = numeric("v_template", (num_vertices, 3))
    shapedirs = numeric("shapedirs", (num_vertices, 3, None), directions=True)
    J_regressor = numeric("J_regressor", (num_joints, num_vertices))
    kintree = numeric("kintree_table", (2, num_joints))
    parents = _parents(path, kintree)
    # the regressor weighs a few vertices per joint: the others add exact zeros. Summed by
    # einsum, not BLAS: a BLAS product here wakes its threads, which then spin for a while
    # on the core the stages need (about 0.1 s of CPU after each model read)
    support = np.flatnonzero(np.any(J_regressor != 0, axis=0))
    regressor = J_regressor[:, support]
    joint_template = np.einsum("jv,vc->jc", regressor, v_template[support])
    joint_shapedirs = np.einsum("jv,vcs->jcs", regressor, shapedirs[support])
    for array in (v_template, shapedirs, J_regressor, parents, joint_template, joint_shapedirs):
        array.flags.writeable = False
    return BodyModel(
        family=family,
        gender=gender,
        path=path,
        sha256=arrays["sha256"],
        v_template=v_template,
        shapedirs=shapedirs,
        J_regressor=J_regressor,
        parents=parents,
        joint_template=joint_template,
        joint_shapedirs=joint_shapedirs,
    )


def _parents(path: Path, kintree: np.ndarray) -> np.ndarray:
    """``kintree_table[0]`` as int64 with the root -1 (files store -1 or 2**32 - 1), checked to
    list each joint after its parent (row 1 the joints 0..J-1 in order), as forward kinematics
    needs."""
    num_joints = kintree.shape[1]
    if not np.array_equal(kintree[1], np.arange(num_joints)):
        raise BodyModelError(path, "'kintree_table' row 1 is not the joints 0..J-1 in order")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    child = np.arange(1, num_joints)
    if ((parents[1:] < 0) | (parents[1:] >= child)).any():
        bad = int(child[(parents[1:] < 0) | (parents[1:] >= child)][0])
        raise BodyModelError(
            path,
            f"'kintree_table' gives joint {bad} the parent {int(kintree[0, bad])}: expected a "
            "joint listed before it",
        )
    return parents


def load_body_model(body_model_dir: str | Path, family: str, gender: str) -> BodyModel:
    """The model of ``family`` and ``gender`` in the user's folder (either layout)."""
    return read_body_model(find_model_file(body_model_dir, family, gender), family, gender)


# ---------------------------------------------------------------------------------------------
# Poses and joints


def assemble_pose(
    family: str,
    *,
    root_orient: np.ndarray,
    pose_body: np.ndarray,
    pose_hand: np.ndarray | None = None,
    pose_jaw: np.ndarray | None = None,
    pose_eye: np.ndarray | None = None,
    num_joints: int | None = None,
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """A family's full axis-angle pose ``(N, K, 3)`` in ``dtype`` (float64 by default; the
    served float32 fields convert exactly to either) from the AMASS fields.

    Joint order as the model's: SMPL root, body 21, hands 2 (``pose_hand`` of width 6); SMPL+H
    root, body, hands 30 (width 90); SMPL-X root, body, jaw, eyes 2, hands 30. Rotations are
    taken as stored (AMASS hand poses are full poses: no hand mean is added); a part that is
    None is zero (the flat pose). ``num_joints`` (default every joint of the family) keeps the
    first K joints, whose parents are among them: 22 needs only ``root_orient`` and
    ``pose_body``.
    """
    check_family(family)
    total = NUM_JOINTS[family]
    keep = total if num_joints is None else num_joints
    if not 1 <= keep <= total:
        raise ValueError(f"num_joints for {family} must be in 1..{total}, got {num_joints}")
    given = {
        "root_orient": root_orient,
        "pose_body": pose_body,
        "pose_hand": pose_hand,
        "pose_jaw": pose_jaw,
        "pose_eye": pose_eye,
    }
    frames = np.asarray(root_orient).shape[0]
    pose = np.zeros((frames, keep, 3), dtype=dtype)
    first = 0
    for name, count in POSE_PARTS[family]:
        if first >= keep:
            break
        value = given[name]
        if value is not None:
            value = np.asarray(value)
            if value.shape != (frames, 3 * count):
                raise ValueError(
                    f"{name} for {family} must have shape ({frames}, {3 * count}), got "
                    f"{value.shape}"
                )
            used = min(count, keep - first)
            pose[:, first : first + used] = value.reshape(frames, count, 3)[:, :used]
        first += count
    for name in given.keys() - {name for name, _ in POSE_PARTS[family]}:
        if given[name] is not None:
            raise ValueError(f"{family} has no {name}")
    return pose


def rest_joints(model: BodyModel, betas: np.ndarray) -> np.ndarray:
    """Rest joints ``J_regressor · (v_template + shapedirs[..., :B] · betas)``, float64.

    Every beta given is used (AMASS files have 16) against the model's first B shape
    directions. ``betas`` ``(B,)`` gives ``(J, 3)``; ``(N, B)`` gives ``(N, J, 3)``.

    Raises:
        ValueError: more betas than the model has shape directions.
    """
    betas = np.asarray(betas, dtype=np.float64)
    count = betas.shape[-1]
    if count > model.num_shape_directions:
        raise ValueError(
            f"{count} betas but the {model.family} model {model.path} has "
            f"{model.num_shape_directions} shape directions"
        )
    # one matrix-vector product (J * 3, B) . (B,): a tenth of the time of an einsum
    directions = model.joint_shapedirs[:, :, :count].reshape(-1, count)
    offsets = betas @ directions.T  # (..., J * 3)
    return model.joint_template + offsets.reshape(*betas.shape[:-1], -1, 3)


def _sin_cos(
    angle: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``sin`` and ``cos`` of float angles ``(..., n)``, through torch's vectorised kernels:
    numpy's float64 ``sin`` and ``cos`` are scalar libm calls, about 10 ns an angle here
    against 2 (both within an ulp). Given to torch in pieces under its grain size (32768
    elements), so that it computes them in this thread: spreading so little work over threads
    costs more CPU than it saves. ``out``: contiguous arrays of ``angle``'s shape to write to."""
    import torch  # the pipeline has it loaded; model reading alone (synth) does not need it

    flat = np.ascontiguousarray(angle).reshape(-1)
    if out is None:
        sin, cos = np.empty_like(flat), np.empty_like(flat)
    else:
        sin, cos = out[0].reshape(-1), out[1].reshape(-1)  # views: contiguous, as asked
    angles, sines, cosines = torch.from_numpy(flat), torch.from_numpy(sin), torch.from_numpy(cos)
    for start in range(0, flat.shape[0], _TRIG_PIECE):
        piece = slice(start, start + _TRIG_PIECE)
        torch.sin(angles[piece], out=sines[piece])
        torch.cos(angles[piece], out=cosines[piece])
    return sin.reshape(angle.shape), cos.reshape(angle.shape)


def rodrigues_components(axis_angle: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rotation matrices of axis-angle vectors given component-major, ``(..., 3, n)`` ->
    ``(..., 3, 3, n)`` in the input's float dtype (Rodrigues: ``cos t I + sin t / t [r]x +
    (1 - cos t) / t**2 r r^T``, the coefficients from the half angle, so that small and zero
    angles are exact), into ``out`` when given. Each entry is one vectorised operation over
    ``n``: no per-matrix overhead. The temporaries are this thread's work buffers
    (:mod:`vposer_data.work_buffers`): fresh ones of this size cost page faults, more than the
    arithmetic."""
    x, y, z = axis_angle[..., 0, :], axis_angle[..., 1, :], axis_angle[..., 2, :]
    shape, dtype = x.shape, np.result_type(axis_angle.dtype, np.float32)

    def buffer(name: str) -> np.ndarray:
        return work_buffer(f"rodrigues.{name}", shape, dtype)

    # |r|^2 summed x, y, z in that order (as three products and two sums would), in one pass
    half = np.einsum("...jn,...jn->...n", axis_angle, axis_angle, out=buffer("half"))
    np.sqrt(half, out=half)
    half *= 0.5
    # a zero angle becomes the smallest normal number: q stays finite (sin t / t, 1 there) and
    # every term it enters is multiplied by r = 0, so R = I exactly; no mask, no 0 / 0
    np.maximum(half, np.finfo(dtype).tiny, out=half)
    sin_half, cos_half = _sin_cos(half, out=(buffer("sin"), buffer("cos")))
    # q = sin(t/2) / (t/2); a = sin t / t = q cos(t/2); b = (1 - cos t) / t**2 = q**2 / 2;
    # cos t = 1 - 2 sin(t/2)**2: no cancellation for small angles
    q = np.divide(sin_half, half, out=half)
    a = np.multiply(q, cos_half, out=cos_half)
    b = np.multiply(q, q, out=q)
    b *= 0.5
    c = np.multiply(sin_half, sin_half, out=sin_half)
    c *= -2.0
    c += 1.0
    if out is None:
        out = np.empty((*axis_angle.shape[:-2], 3, 3, axis_angle.shape[-1]), dtype=dtype)
    bx = np.multiply(b, x, out=buffer("bx"))
    by = np.multiply(b, y, out=buffer("by"))
    bz = np.multiply(b, z, out=b)
    # diagonal: c + b r_i r_i; off the diagonal: b r_i r_j -+ a r_k
    for i, (br, r) in enumerate(((bx, x), (by, y), (bz, z))):
        np.multiply(br, r, out=out[..., i, i, :])
        out[..., i, i, :] += c
    scratch = c  # no longer needed
    ax = np.multiply(a, x, out=scratch)
    np.multiply(by, z, out=out[..., 1, 2, :])
    np.add(out[..., 1, 2, :], ax, out=out[..., 2, 1, :])
    out[..., 1, 2, :] -= ax
    ay = np.multiply(a, y, out=scratch)
    np.multiply(bx, z, out=out[..., 0, 2, :])
    np.subtract(out[..., 0, 2, :], ay, out=out[..., 2, 0, :])
    out[..., 0, 2, :] += ay
    az = np.multiply(a, z, out=scratch)
    np.multiply(bx, y, out=out[..., 0, 1, :])
    np.add(out[..., 0, 1, :], az, out=out[..., 1, 0, :])
    out[..., 0, 1, :] -= az
    return out


def rotation_matrices(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` float64 of axis-angle vectors ``(..., 3)``."""
    r = np.asarray(axis_angle, dtype=np.float64)
    return np.moveaxis(rodrigues_components(r.reshape(-1, 3).T), -1, 0).reshape(*r.shape, 3)


def posed_joints(
    rest: np.ndarray,
    parents: np.ndarray | tuple[int, ...],
    pose: np.ndarray,
    trans: np.ndarray | None = None,
    *,
    block_frames: int = _FK_BLOCK,
    joints: tuple[int, ...] | None = None,
    rest_index: np.ndarray | None = None,
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """Joint positions ``(N, K, 3)`` after forward kinematics, plus ``trans``, computed and
    returned in ``dtype`` (float64, or float32: half the memory traffic, about twice as fast,
    within about 1e-6 m of float64 for a body).

    ``rest`` are rest joints ``(J, 3)`` (or per frame ``(N, J, 3)``, or ``(U, J, 3)`` with
    ``rest_index`` ``(N,)`` naming each frame's: one per motion), ``parents`` the tree (root
    -1, each joint after its parent), ``pose`` axis-angle ``(N, K, 3)`` for the first K <= J
    joints (the joints whose positions are wanted: the first K are closed under parents).
    Joint k's global transform is its parent's composed with ``(R_k, rest_k - rest_parent)``;
    its position is the transform's translation, as linear blend skinning poses joints.
    Joint by joint in tree order, ``block_frames`` frames at a time, component-major (each
    matrix entry a vector over the block's frames, so that a 3x3 product is one vectorised
    ``einsum``), in this thread's work buffers. Only the joints with children need their
    rotation. ``joints``: compute only these and their ancestors; the other columns of the
    result are left zero.
    """
    pose = np.asarray(pose)
    if pose.ndim != 3 or pose.shape[2] != 3:
        raise ValueError(f"pose must have shape (N, K, 3), got {pose.shape}")
    frames, count = pose.shape[0], pose.shape[1]
    tree = tuple(int(p) for p in np.asarray(parents)[:count])
    float_type = np.dtype(dtype)
    if float_type not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {float_type}")
    rest = np.asarray(rest, dtype=np.float64)
    if rest.shape[-2] < count or rest.shape[-1] != 3 or rest.ndim not in (2, 3):
        raise ValueError(f"rest joints of shape {rest.shape} for a pose of {count} joints")
    per_frame = rest.ndim == 3
    if rest_index is not None:
        rest_index = np.asarray(rest_index, dtype=np.int64).reshape(-1)
        if not per_frame or rest_index.shape != (frames,):
            raise ValueError(f"rest_index must name one of rest's {rest.shape[:-2]} per frame")
    elif per_frame and rest.shape[0] != frames:
        raise ValueError(f"rest joints for {rest.shape[0]} frames, pose for {frames}")
    if trans is not None:
        trans = np.asarray(trans)
        if trans.shape != (frames, 3):
            raise ValueError(f"trans must have shape ({frames}, 3), got {trans.shape}")
    needed = set(range(count)) if joints is None else set()
    for joint in joints or ():
        while joint >= 0 and joint not in needed:
            needed.add(joint)
            joint = tree[joint]
    order = sorted(needed)
    has_child = {tree[j] for j in order if j > 0}
    rotated = [j for j in order if j in has_child]  # the joints whose rotation is used
    # bone vectors rest_k - rest_parent(k), component-major (K, 3, frames or motions, or 1);
    # the root's is its own rest position
    rest = np.ascontiguousarray(
        rest[:, :count, :].transpose(1, 2, 0) if per_frame else rest[:count, :, None]
    )
    bones = rest - rest[[max(p, 0) for p in tree]]
    bones[0] = rest[0]
    bones = bones.astype(float_type, copy=False)  # differences of float64 rest joints, rounded once
    unposed = [j for j in range(count) if j not in needed]  # left zero
    out = np.empty((frames, count, 3), dtype=float_type)

    def buffer(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return work_buffer(f"posed_joints.{name}", shape, float_type)

    for start in range(0, frames, block_frames):
        stop = min(start + block_frames, frames)
        n = stop - start
        # (R, 3, n): the block's joints component-major in one blocked transpose, then the
        # rotated joints' rows (numpy gathers a transpose element by element, slower)
        columns = buffer("columns", (count, 3, n))
        transpose_into(columns.reshape(count * 3, n), _rows(pose[start:stop], float_type))
        aa = columns
        if len(rotated) < count:
            aa = np.take(columns, rotated, axis=0, out=buffer("aa", (len(rotated), 3, n)))
        local = rodrigues_components(aa, out=buffer("local", (len(rotated), 3, 3, n)))
        local_of = {joint: local[k] for k, joint in enumerate(rotated)}
        if rest_index is not None:
            block_bones = np.take(
                bones, rest_index[start:stop], axis=2, out=buffer("bones", (count, 3, n))
            )
        elif per_frame:
            block_bones = bones[:, :, start:stop]
        else:
            block_bones = bones
        world: dict[int, np.ndarray] = {}
        free = buffer("free", (3, 3, n))
        term = buffer("term", (3, n))  # for the positions
        positions = buffer("positions", (count, 3, n))
        positions[unposed] = 0
        for joint in order:  # parents come first
            parent = tree[joint]
            bone = block_bones[joint]
            if parent < 0:
                positions[joint] = bone
                if trans is not None:
                    positions[joint] += np.ascontiguousarray(trans[start:stop].T)
                if joint in has_child:
                    world[joint] = local_of[joint]
                continue
            w = world[parent]
            # parent + w b (each einsum sums its three products in one pass)
            np.einsum("ij...,j...->i...", w, bone, out=term)
            np.add(positions[parent], term, out=positions[joint])
            if joint in has_child:
                own = local_of[joint]
                world[joint] = np.einsum("ijn,jkn->ikn", w, own, out=free)
                free = own  # this joint's local rotation is not read again
        transpose_into(out[start:stop].reshape(n, count * 3), positions.reshape(count * 3, n))
    return out


def _rows(pose: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``pose`` ``(n, K, 3)`` as C-contiguous rows ``(n, 3 K)`` of ``dtype`` (a view where it
    already is one)."""
    return np.ascontiguousarray(pose, dtype=dtype).reshape(pose.shape[0], -1)


def transpose_into(out: np.ndarray, source: np.ndarray) -> None:
    """``out[...] = source.T`` for C-contiguous 2-D arrays of one dtype, through torch's
    blocked copy: numpy copies a transpose element by element, five times slower here (the
    joints of a block, component-major, back to one row per frame)."""
    import torch  # loaded wherever joints are computed (see _sin_cos)

    torch.from_numpy(out).copy_(torch.from_numpy(source).t())


def body_joints(
    model: BodyModel,
    betas: np.ndarray,
    pose: np.ndarray,
    trans: np.ndarray | None = None,
) -> np.ndarray:
    """Posed joints ``(N, K, 3)`` float64 of ``model`` for axis-angle ``pose`` ``(N, K, 3)``
    (K joints, from :func:`assemble_pose`), ``betas`` ``(B,)`` or ``(N, B)``, ``trans``."""
    return posed_joints(rest_joints(model, betas), model.parents, pose, trans)
