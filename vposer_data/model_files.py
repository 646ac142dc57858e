"""The user's SMPL-family model files: where they are looked for, and reading them as data.

Two layouts are in use and both are accepted, for families ``smpl``, ``smplh``, ``smplx`` and
genders ``male``, ``female``, ``neutral``::

    <dir>/<family>/<gender>/model.npz          AMASS, human_body_prior
    <dir>/<family>/<FAMILY>_<GENDER>.npz       the smplx package (SMPL_MALE.npz, SMPLX_NEUTRAL.npz)
    <dir>/<family>/<FAMILY>_<GENDER>.pkl       the same, as a pickle

Model files are data, never code: ``.npz`` is read with ``allow_pickle=False``; a ``.pkl`` only
through :class:`ModelUnpickler`, which admits numpy arrays and scipy sparse matrices and nothing
else (a chumpy pickle is refused with the recipe to convert it). Every read also gives the
file's SHA-256, the model's identity in a prepared folder.
"""

from __future__ import annotations

import hashlib
import pickle
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vposer_data.errors import FileFormatError, VPoserDataError

__all__ = [
    "FAMILIES",
    "GENDERS",
    "BodyModelError",
    "BodyModelNotFoundError",
    "ChumpyModelError",
    "ModelUnpickler",
    "candidate_paths",
    "check_family",
    "check_family_gender",
    "find_model_file",
    "model_sha256",
    "read_model_arrays",
]

FAMILIES = ("smpl", "smplh", "smplx")
GENDERS = ("male", "female", "neutral")
_HASH_CHUNK = 1 << 20


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


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"body-model family must be one of {FAMILIES}, got {family!r}")


def check_family_gender(family: str, gender: str) -> None:
    check_family(family)
    if gender not in GENDERS:
        raise ValueError(f"body-model gender must be one of {GENDERS}, got {gender!r}")


def candidate_paths(body_model_dir: str | Path, family: str, gender: str) -> tuple[Path, ...]:
    """The files that may hold the model, in the order they are tried: AMASS's ``model.npz``,
    then the smplx package's ``<FAMILY>_<GENDER>.npz`` and ``.pkl``."""
    check_family_gender(family, gender)
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


def model_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a model file's bytes: its identity, wherever it lies."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
