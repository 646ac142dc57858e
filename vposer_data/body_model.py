"""The user's SMPL-family body models: find and read the model file, and pose its joints.

The models are licensed, so the package never ships them: the user points at their own copy.
Two layouts are in use and both are accepted, for families ``smpl``, ``smplh``, ``smplx`` and
genders ``male``, ``female``, ``neutral``::

    <dir>/<family>/<gender>/model.npz          AMASS, human_body_prior
    <dir>/<family>/<FAMILY>_<GENDER>.npz       the smplx package (SMPL_MALE.npz, SMPLX_NEUTRAL.npz)
    <dir>/<family>/<FAMILY>_<GENDER>.pkl       the same, as a pickle

Model files are data, never code: ``.npz`` is read with ``allow_pickle=False``; a ``.pkl`` only
through :class:`ModelUnpickler`, which admits numpy arrays and scipy sparse matrices and nothing
else (a chumpy pickle is refused with the recipe to convert it).

Joints are the posed joints of linear blend skinning: rest joints
``J = J_regressor · (v_template + shapedirs[..., :B] · betas)`` with every beta given, then
forward kinematics along the model's tree. Pose blend shapes move vertices, not joints, so no
vertex is ever posed: ``J_regressor · v_template`` and ``J_regressor · shapedirs`` are computed
once per model, and a frame costs one rotation per joint.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vposer_data.errors import FileFormatError, VPoserDataError

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
    "shape_direction_count",
]

FAMILIES = ("smpl", "smplh", "smplx")
GENDERS = ("male", "female", "neutral")
NUM_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}
#: The body joints every family shares, root first: the first 22 of each family's order.
BODY_JOINT_COUNT = 22

_BODY = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # the models' order within a hand


def _hand(side: str) -> tuple[str, ...]:
    return tuple(f"{side}_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3))


def _hand_parents(wrist: int, first: int) -> tuple[int, ...]:
    """Parents of a hand's 15 joints numbered from ``first``: each finger a chain off the wrist."""
    parents: list[int] = []
    for finger in range(len(_FINGERS)):
        base = first + 3 * finger
        parents += [wrist, base, base + 1]
    return tuple(parents)


#: Joint names in each family's own order (SMPL 24, SMPL+H 52, SMPL-X 55). The first 22 are
#: the body joints, the same in every family. SMPL-X's eyes are the eyeball joints.
JOINT_NAMES_BY_FAMILY: dict[str, tuple[str, ...]] = {
    "smpl": (*_BODY, "left_hand", "right_hand"),
    "smplh": (*_BODY, *_hand("left"), *_hand("right")),
    "smplx": (*_BODY, "jaw", "left_eye", "right_eye", *_hand("left"), *_hand("right")),
}
#: The kinematic tree the real model files store (``kintree_table[0]``), root -1.
JOINT_PARENTS_BY_FAMILY: dict[str, tuple[int, ...]] = {
    "smpl": (*_BODY_PARENTS, 20, 21),
    "smplh": (*_BODY_PARENTS, *_hand_parents(20, 22), *_hand_parents(21, 37)),
    "smplx": (*_BODY_PARENTS, 15, 15, 15, *_hand_parents(20, 25), *_hand_parents(21, 40)),
}

#: How a family's full pose is assembled from the AMASS fields: (field, joints), in joint order.
POSE_PARTS: dict[str, tuple[tuple[str, int], ...]] = {
    "smpl": (("root_orient", 1), ("pose_body", 21), ("pose_hand", 2)),
    "smplh": (("root_orient", 1), ("pose_body", 21), ("pose_hand", 30)),
    "smplx": (
        ("root_orient", 1),
        ("pose_body", 21),
        ("pose_jaw", 1),
        ("pose_eye", 2),
        ("pose_hand", 30),
    ),
}

#: The keys joints need; the other keys of a model file (weights, posedirs, f, ...) are not read.
_NEEDED_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")
_HASH_CHUNK = 1 << 20
#: Frames per block of forward kinematics: float64 rotations of 55 joints take 4 MB.
_FK_BLOCK = 1024


class BodyModelError(FileFormatError):
    """A body-model file that cannot be used; the message names the file and what was expected."""


class ChumpyModelError(BodyModelError):
    """A ``.pkl`` model holding chumpy objects: code, refused; the message says how to convert."""


class BodyModelNotFoundError(VPoserDataError, FileNotFoundError):
    """No model file of a family and gender; the message lists every path looked for."""

    def __init__(self, family: str, gender: str, paths: tuple[Path, ...]) -> None:
        self.family = family
        self.gender = gender
        self.paths = paths
        listed = "\n".join(f"  {p}" for p in paths)
        super().__init__(f"no {family} {gender} body model; looked for:\n{listed}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.family, self.gender, self.paths))


# ---------------------------------------------------------------------------------------------
# Finding and reading model files


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"body-model family must be one of {FAMILIES}, got {family!r}")


def _check_family_gender(family: str, gender: str) -> None:
    _check_family(family)
    if gender not in GENDERS:
        raise ValueError(f"body-model gender must be one of {GENDERS}, got {gender!r}")


def candidate_paths(body_model_dir: str | Path, family: str, gender: str) -> tuple[Path, ...]:
    """The files that may hold the model, in the order they are tried: AMASS's ``model.npz``,
    then the smplx package's ``<FAMILY>_<GENDER>.npz`` and ``.pkl``."""
    _check_family_gender(family, gender)
    folder = Path(body_model_dir) / family
    stem = f"{family.upper()}_{gender.upper()}"
    return (folder / gender / "model.npz", folder / f"{stem}.npz", folder / f"{stem}.pkl")


def find_model_file(body_model_dir: str | Path, family: str, gender: str) -> Path:
    """The first of :func:`candidate_paths` that is a file.

    Raises:
        BodyModelNotFoundError: none is; the message lists them all.
    """
    paths = candidate_paths(body_model_dir, family, gender)
    for path in paths:
        if path.is_file():
            return path
    raise BodyModelNotFoundError(family, gender, paths)


def load_body_model(body_model_dir: str | Path, family: str, gender: str) -> BodyModel:
    """The model of ``family`` and ``gender`` in the user's folder (either layout)."""
    return read_body_model(find_model_file(body_model_dir, family, gender), family, gender)


_CONVERT_RECIPE = """\
In a Python environment that has chumpy and scipy (for example a venv with
`pip install chumpy scipy "numpy<1.24"`), run once:
    import pickle, numpy as np
    d = pickle.load(open({pkl}, "rb"), encoding="latin1")
    dense = lambda v: v.toarray() if hasattr(v, "toarray") else np.asarray(v)
    keys = "v_template shapedirs posedirs J_regressor weights kintree_table f".split()
    np.savez({npz}, **{{k: dense(d[k]) for k in keys}})
The .npz beside the .pkl is then read instead (it is looked for first)."""


class ModelUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and scipy sparse matrices and nothing else.

    Every global a pickle names goes through :meth:`find_class`, which admits only numpy's
    array, dtype and the functions that rebuild them, scipy's sparse matrix classes, and for
    pickles of protocol 0-2 the two helpers those protocols use (``copyreg._reconstructor`` with
    ``object``, and ``_codecs.encode`` restricted to latin-1). Calling any of these with any
    arguments builds data, never runs other code. Python 2 pickles (as the SMPL files are) are
    read with ``encoding="latin1"``, as numpy requires.
    """

    def __init__(self, file: Any, path: str | Path = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        found = _admitted_global(module, name)
        if found is not None:
            return found
        if module == "chumpy" or module.startswith("chumpy."):
            pkl = Path(self._path)
            npz = pkl.with_suffix(".npz")
            raise ChumpyModelError(
                pkl,
                f"holds chumpy objects ({module}.{name}); a pickle of chumpy objects runs "
                "chumpy's code when read, so it is refused.\n"
                + _CONVERT_RECIPE.format(pkl=repr(str(pkl)), npz=repr(str(npz))),
            )
        raise BodyModelError(
            self._path,
            f"the pickle names {module}.{name}; a body-model pickle may hold only numpy arrays "
            "and scipy sparse matrices, so it is refused (nothing in it was run)",
        )


_SPARSE_KINDS = ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
_SPARSE_NAMES = frozenset(
    f"{kind}_{form}" for kind in _SPARSE_KINDS for form in ("matrix", "array")
)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickles of protocol 0-2 use it for bytes: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


@cache
def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 (and 1.26's forward-compatible names)
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import copyreg

    admitted: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
        ("builtins", "object"): object,
        ("__builtin__", "object"): object,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):  # numpy 1 and numpy 2 pickles
        admitted[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        admitted[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        admitted[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return admitted


def _admitted_global(module: str, name: str) -> Any:
    """The object a model pickle may name as ``module.name``, or None."""
    found = _numpy_globals().get((module, name))
    if found is not None:
        return found
    if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_NAMES:
        try:
            import scipy.sparse
        except ImportError as error:  # the pickle is fine; this environment lacks scipy
            raise pickle.UnpicklingError(
                f"the pickle holds a scipy sparse matrix ({module}.{name}): install scipy to "
                "read it, or save the model as .npz with the matrix dense"
            ) from error
        return getattr(scipy.sparse, name)
    return None


def read_model_arrays(path: str | Path, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The arrays of a model file (``.npz`` or ``.pkl``) and the SHA-256 of its bytes.

    Returns ``{key: array}`` for ``keys`` (every array of the file when None) plus ``"sha256"``,
    the hex digest of the file's bytes, hashed and then parsed through one open file (a file
    renamed over it meanwhile changes neither). Sparse matrices of a ``.pkl`` become dense.

    Raises:
        BodyModelError: unreadable file, a missing key, an object array, a forbidden pickle.
    """
    path = Path(path)
    with open(path, "rb") as file:
        digest = hashlib.sha256()
        for chunk in iter(lambda: file.read(_HASH_CHUNK), b""):
            digest.update(chunk)
        if file.tell() == 0:
            raise BodyModelError(path, "the file is empty")
        file.seek(0)
        if path.suffix == ".pkl":
            arrays = _read_pickle(path, file, keys)
        else:
            arrays = _read_npz(path, file, keys)
    sha256 = digest.hexdigest()
    arrays["sha256"] = sha256
    return arrays


def _read_npz(path: Path, file: BinaryIO, keys: tuple[str, ...] | None) -> dict[str, Any]:
    try:
        npz = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise BodyModelError(path, f"not an .npz archive ({error})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise BodyModelError(path, "holds one array, not an .npz archive of named arrays")
    with npz:
        wanted = keys if keys is not None else tuple(npz.files)
        out: dict[str, Any] = {}
        for key in wanted:
            if key not in npz.files:
                raise BodyModelError(path, f"has no key {key!r} (keys: {sorted(npz.files)})")
            try:
                out[key] = npz[key]
            except ValueError as error:  # an object array: needs pickle
                if keys is None:
                    continue  # reading everything: skip what is not plain data
                raise BodyModelError(
                    path,
                    f"{key!r} is a pickled object, not a plain array ({error}); save it as a "
                    "numeric array (a scipy sparse J_regressor as J_regressor.toarray())",
                ) from None
    return out


def _read_pickle(path: Path, file: BinaryIO, keys: tuple[str, ...] | None) -> dict[str, Any]:
    try:
        loaded = ModelUnpickler(file, path).load()
    except BodyModelError:
        raise
    except Exception as error:  # a damaged or foreign pickle: no code of it ran
        raise BodyModelError(path, f"not a readable model pickle ({error})") from None
    if not isinstance(loaded, dict):
        raise BodyModelError(path, f"holds a {type(loaded).__name__}, not a dict of arrays")
    wanted = keys if keys is not None else tuple(loaded)
    out: dict[str, Any] = {}
    for key in wanted:
        if key not in loaded:
            raise BodyModelError(path, f"has no key {key!r} (keys: {sorted(loaded)})")
        value = loaded[key]
        if hasattr(value, "toarray"):  # a scipy sparse matrix
            try:
                value = value.toarray()
            except Exception as error:  # a sparse matrix of a scipy this one cannot rebuild
                raise BodyModelError(
                    path, f"{key!r}: a sparse matrix that does not convert to dense ({error})"
                ) from None
        if isinstance(value, np.ndarray) and value.dtype != object:
            out[key] = value
        elif keys is not None:
            raise BodyModelError(path, f"{key!r} is a {type(value).__name__}, not an array")
    return out


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
    _check_family_gender(family, gender)
    path = Path(path)
    arrays = read_model_arrays(path, _NEEDED_KEYS)
    num_joints, num_vertices = NUM_JOINTS[family], NUM_VERTICES[family]

    def numeric(key: str, shape: tuple[int | None, ...]) -> np.ndarray:
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
        out = np.asarray(value, dtype=np.float64)
        if not np.isfinite(out).all():
            raise BodyModelError(path, f"{key!r} holds NaN or infinite values")
        return out

    v_template = numeric("v_template", (num_vertices, 3))
    all_dirs = numeric("shapedirs", (num_vertices, 3, None))
    J_regressor = numeric("J_regressor", (num_joints, num_vertices))
    kintree = numeric("kintree_table", (2, num_joints))
    parents = _parents(path, kintree)
    shapedirs = np.ascontiguousarray(
        all_dirs[:, :, : shape_direction_count(family, all_dirs.shape[2])]
    )
    joint_template = J_regressor @ v_template
    joint_shapedirs = np.einsum("jv,vcs->jcs", J_regressor, shapedirs, optimize=True)
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
) -> np.ndarray:
    """A family's full axis-angle pose ``(N, K, 3)`` float64 from the AMASS fields.

    Joint order as the model's: SMPL root, body 21, hands 2 (``pose_hand`` of width 6); SMPL+H
    root, body, hands 30 (width 90); SMPL-X root, body, jaw, eyes 2, hands 30. Rotations are
    taken as stored (AMASS hand poses are full poses: no hand mean is added); a part that is
    None is zero (the flat pose). ``num_joints`` (default every joint of the family) keeps the
    first K joints, whose parents are among them: 22 needs only ``root_orient`` and
    ``pose_body``.
    """
    _check_family(family)
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
    pose = np.zeros((frames, keep, 3))
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
    return model.joint_template + np.einsum(
        "jcs,...s->...jc", model.joint_shapedirs[:, :, :count], betas
    )


def posed_joints(
    rest: np.ndarray,
    parents: np.ndarray | tuple[int, ...],
    pose: np.ndarray,
    trans: np.ndarray | None = None,
    *,
    block_frames: int = _FK_BLOCK,
) -> np.ndarray:
    """Joint positions ``(N, K, 3)`` float64 after forward kinematics, plus ``trans``.

    ``rest`` are rest joints ``(J, 3)`` (or per frame ``(N, J, 3)``), ``parents`` the tree (root
    -1, each joint after its parent), ``pose`` axis-angle ``(N, K, 3)`` for the first K <= J
    joints (the joints whose positions are wanted: the first K are closed under parents).
    Joint k's global transform is its parent's composed with ``(R_k, rest_k - rest_parent)``;
    its position is the transform's translation, as linear blend skinning poses joints.
    Joint by joint in tree order, each step a batch of ``block_frames`` frames (joint-major
    arrays, so a parent's transforms are one contiguous batch).
    """
    import torch

    from vposer_data.rotations import aa_to_matrot  # torch: imported only when joints are made

    pose = np.asarray(pose)
    if pose.ndim != 3 or pose.shape[2] != 3:
        raise ValueError(f"pose must have shape (N, K, 3), got {pose.shape}")
    frames, count = pose.shape[0], pose.shape[1]
    tree = tuple(int(p) for p in np.asarray(parents)[:count])
    rest = np.asarray(rest, dtype=np.float64)
    if rest.shape[-2] < count or rest.shape[-1] != 3 or rest.ndim not in (2, 3):
        raise ValueError(f"rest joints of shape {rest.shape} for a pose of {count} joints")
    per_frame = rest.ndim == 3
    if per_frame and rest.shape[0] != frames:
        raise ValueError(f"rest joints for {rest.shape[0]} frames, pose for {frames}")
    if trans is not None:
        trans = np.asarray(trans, dtype=np.float64)
        if trans.shape != (frames, 3):
            raise ValueError(f"trans must have shape ({frames}, 3), got {trans.shape}")
    # bone vectors rest_k - rest_parent(k), joint-major; the root's is its own rest position
    rest = rest[..., :count, :]
    bones = rest - rest[..., [max(p, 0) for p in tree], :]
    bones[..., 0, :] = rest[..., 0, :]
    bones = np.moveaxis(bones, -2, 0)[..., None]  # (K, N or 1... , 3, 1)
    if not per_frame:
        bones = bones[:, None]  # (K, 1, 3, 1): the same for every frame
    has_child = set(tree[1:])
    out = np.empty((frames, count, 3))
    for start in range(0, frames, block_frames):
        stop = min(start + block_frames, frames)
        joint_major = np.ascontiguousarray(pose[start:stop].transpose(1, 0, 2), dtype=np.float64)
        local = aa_to_matrot(torch.from_numpy(joint_major)).numpy()  # (K, n, 3, 3)
        block_bones = bones[:, start:stop] if per_frame else bones
        world = np.empty_like(local)  # global rotations, of the joints with children
        positions = np.empty((count, stop - start, 3))
        world[0] = local[0]
        positions[0] = block_bones[0, ..., 0]
        for joint in range(1, count):  # parents come first; each a batch of n frames
            parent = tree[joint]
            offset = np.matmul(world[parent], block_bones[joint])[..., 0]
            np.add(positions[parent], offset, out=positions[joint])
            if joint in has_child:
                np.matmul(world[parent], local[joint], out=world[joint])
        if trans is not None:
            positions += trans[None, start:stop]
        out[start:stop] = positions.transpose(1, 0, 2)
    return out


def body_joints(
    model: BodyModel,
    betas: np.ndarray,
    pose: np.ndarray,
    trans: np.ndarray | None = None,
) -> np.ndarray:
    """Posed joints ``(N, K, 3)`` float64 of ``model`` for axis-angle ``pose`` ``(N, K, 3)``
    (K joints, from :func:`assemble_pose`), ``betas`` ``(B,)`` or ``(N, B)``, ``trans``."""
    return posed_joints(rest_joints(model, betas), model.parents, pose, trans)
