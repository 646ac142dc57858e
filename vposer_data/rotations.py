"""The few rotation conversions the augmentations need; the inverse ones from :mod:`roma`.

Conventions: axis-angle (rotation vector) ``(..., 3)``; rotation matrices ``(..., 3, 3)``
acting on column vectors; the AMASS world is z-up. Each function computes in float64 and
returns the input's dtype.
"""

from __future__ import annotations

import torch

__all__ = ["aa_to_matrot", "matrot_to_aa", "rotz", "yaw_sxyz"]


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


_SMALL_ANGLE = 1e-4


def aa_to_matrot(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues).

    The closed form ``R = cos(t) I + sin(t)/t [a]x + (1 - cos(t))/t^2 a a^T`` (Taylor terms near
    ``t = 0``), written out here because it is the one conversion the default pipeline needs:
    importing roma costs about a second per run (it loads ``torch._dynamo``).
    """
    if aa.shape[-1:] != (3,):
        raise ValueError(f"aa_to_matrot expects (..., 3), got shape {tuple(aa.shape)}")
    x, y, z = aa.to(torch.float64).unbind(-1)
    t2 = x * x + y * y + z * z
    t = torch.sqrt(t2)
    small = t < _SMALL_ANGLE
    safe_t = torch.where(small, torch.ones_like(t), t)
    c = torch.cos(t)
    A = torch.where(small, 1 - t2 / 6, torch.sin(safe_t) / safe_t)
    B = torch.where(small, 0.5 - t2 / 24, (1 - c) / (safe_t * safe_t))
    # fmt: off
    R = torch.stack([c + B * x * x, B * x * y - A * z, B * x * z + A * y,
                     B * x * y + A * z, c + B * y * y, B * y * z - A * x,
                     B * x * z - A * y, B * y * z + A * x, c + B * z * z], dim=-1)
    # fmt: on
    return R.reshape(*aa.shape[:-1], 3, 3).to(_out_dtype(aa))


def matrot_to_aa(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``, angle in ``[0, pi]``."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrot_to_aa expects (..., 3, 3), got shape {tuple(R.shape)}")
    import roma  # imported here: see aa_to_matrot

    return roma.rotmat_to_rotvec(R.to(torch.float64)).to(_out_dtype(R))


def rotz(angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` (radians, ``(...)``) about the vertical z axis: ``(..., 3, 3)``."""
    a = angle.to(torch.float64)
    c, s = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    # fmt: off
    R = torch.stack([c, -s, zero,
                     s, c, zero,
                     zero, zero, one], dim=-1)
    # fmt: on
    return R.reshape(*a.shape, 3, 3).to(_out_dtype(angle))


def yaw_sxyz(R: torch.Tensor) -> torch.Tensor:
    """Angle ``g`` about z of the static-xyz Euler decomposition ``R = Rz(g) Ry(b) Rx(a)``.

    ``g = atan2(R[..., 1, 0], R[..., 0, 0])``, in ``(-pi, pi]``; shape ``(...)``.
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"yaw_sxyz expects (..., 3, 3), got shape {tuple(R.shape)}")
    R64 = R.to(torch.float64)
    return torch.atan2(R64[..., 1, 0], R64[..., 0, 0]).to(_out_dtype(R))
