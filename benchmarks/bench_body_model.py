"""Command: forward kinematics (``vposer_data.body_model``) against the smplx package's full
linear blend skinning, on made-up model files, for the same joints.

Prints frames per second of :func:`posed_joints` for 22 joints (the body set), 52 (SMPL+H) and
55 (SMPL-X), and of ``smplx.lbs.lbs`` (every vertex skinned, what a ``smplx.create`` model's
forward runs) on the same inputs, in float32 as users run it and in float64; and the largest
distance between the two results per family and gender. A measurement, not a test: it never
asserts. Needs the ``test`` extra (smplx).

    python benchmarks/bench_body_model.py --frames 20000 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import lbs

from vposer_data.body_model import (
    FAMILIES,
    GENDERS,
    NUM_JOINTS,
    load_body_model,
    posed_joints,
    read_model_arrays,
    rest_joints,
)
from vposer_data.synthetic_models import write_body_models

BETAS = 16


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """The shortest of ``repeats`` wall times of ``run``, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def lbs_runner(
    raw: dict, betas: np.ndarray, pose: np.ndarray, dtype: torch.dtype, batch: int
) -> Callable[[], np.ndarray]:
    """smplx.lbs.lbs over ``pose`` in batches of ``batch`` frames; returns the joints."""

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float64), dtype=dtype)

    v_template = tensor(raw["v_template"])
    shapedirs = tensor(raw["shapedirs"][:, :, : betas.shape[0]])
    posedirs = tensor(raw["posedirs"].reshape(-1, raw["posedirs"].shape[2]).T)
    regressor, weights = tensor(raw["J_regressor"]), tensor(raw["weights"])
    parents = torch.tensor(raw["kintree_table"][0].astype(np.int64))
    parents[0] = -1
    poses = tensor(pose.reshape(pose.shape[0], -1))
    shape = tensor(betas)

    def run() -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, poses.shape[0], batch):
                block = poses[start : start + batch]
                betas_block = shape[None].expand(block.shape[0], -1)
                _, joints = lbs(
                    betas_block, block, v_template, shapedirs, posedirs, regressor, parents, weights
                )
                out.append(joints)
        return torch.cat(out).double().numpy()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000, help="frames for kinematics")
    parser.add_argument("--lbs-frames", type=int, default=2048, help="frames for smplx.lbs")
    parser.add_argument("--lbs-batch", type=int, default=256, help="smplx.lbs frames per call")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_body_models(root, seed=0)
        print(f"torch threads: {args.threads}; frames/s, best of {args.repeat}")
        print(f"{'model':<16}{'joints':>7}{'kinematics':>14}{'lbs f32':>12}{'lbs f64':>12}"
              f"{'ratio f32':>11}")  # fmt: skip
        for family, joint_counts in (("smplh", (22, 52)), ("smplx", (22, 55))):
            model = load_body_model(root, family, "male")
            raw = read_model_arrays(model.path)
            betas = rng.normal(size=BETAS)
            pose = rng.normal(size=(args.frames, NUM_JOINTS[family], 3)) * 0.5
            trans = rng.normal(size=(args.frames, 3))
            rest = rest_joints(model, betas)
            lbs_pose = pose[: args.lbs_frames]
            lbs_rate = {}
            for dtype in (torch.float32, torch.float64):
                run = lbs_runner(raw, betas, lbs_pose, dtype, args.lbs_batch)
                lbs_rate[dtype] = args.lbs_frames / best_of(args.repeat, run)
            for count in joint_counts:
                kinematics = partial(posed_joints, rest, model.parents, pose[:, :count], trans)
                rate = args.frames / best_of(args.repeat, kinematics)
                print(
                    f"{family + ' male':<16}{count:>7}{rate:>14,.0f}"
                    f"{lbs_rate[torch.float32]:>12,.0f}{lbs_rate[torch.float64]:>12,.0f}"
                    f"{rate / lbs_rate[torch.float32]:>10.1f}x"
                )
        print("\nlargest |joints - smplx.lbs joints| (m), 256 random frames, 16 betas:")
        for family in FAMILIES:
            worst = {torch.float64: 0.0, torch.float32: 0.0}
            for gender in GENDERS:
                model = load_body_model(root, family, gender)
                raw = read_model_arrays(model.path)
                betas = rng.normal(size=BETAS) * 1.5
                pose = rng.normal(size=(256, NUM_JOINTS[family], 3)) * 0.6
                trans = rng.normal(size=(256, 3))
                ours = posed_joints(rest_joints(model, betas), model.parents, pose, trans)
                ours32 = ours.astype(np.float32)  # as the pipeline stores them
                for dtype in worst:
                    theirs = lbs_runner(raw, betas, pose, dtype, 256)() + trans[:, None]
                    worst[dtype] = max(worst[dtype], float(np.abs(ours32 - theirs).max()))
            print(
                f"  {family:<6} float64 lbs {worst[torch.float64]:.2e}   "
                f"float32 lbs {worst[torch.float32]:.2e}"
            )


if __name__ == "__main__":
    main()
