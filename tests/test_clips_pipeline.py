"""Temporal clips end to end: the clock at real AMASS rates, canonical clips, per-clip
augmentations, the dataset and DataModule serving (B, T, D), and a Lightning fit on clips."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import roma
import torch
from helpers import exact_tick_count
from torch import nn

from vposer_data import PrepareConfig, VPoserDataModule, VPoserDataset, prepare_vposer_datasets
from vposer_data.cli import main as cli_main
from vposer_data.clips import uncanonicalize
from vposer_data.manifest import split_dir
from vposer_data.rotations import aa_to_matrot, matrot_to_aa, rotz
from vposer_data.sampling import trim_bounds
from vposer_data.synthetic import write_amass_tree, write_motion_npz, write_npz

T, TARGET = 8, 30.0
RATES = (59.94, 59.9999885, 120.00004, 250.0)
QUIET = {"progress": False, "num_workers": 0}
BETAS = np.linspace(-1, 1, 16)


def clips_config(**changes: Any) -> dict[str, Any]:
    return {"sampling": "clips", "target_fps": TARGET, "clip_frames": T, **QUIET, **changes}


def motion(path: Path, frames: int, fps: float, seed: int, gender: str = "female") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_motion_npz(path, "smplh", frames, fps, gender, BETAS, np.random.default_rng(seed))


def write_rates_tree(root: Path, frames: int = 700) -> dict[str, float]:
    """One SMPL+H motion per rate (and one too short for a clip); path -> rate."""
    rates = {}
    for i, fps in enumerate(RATES):
        rel = f"DS/s{i}/m_poses.npz"
        motion(root / rel, frames + 37 * i, fps, seed=i)
        rates[rel] = fps
    motion(root / "DS/short/m_poses.npz", 20, 120.0, seed=9, gender="male")
    return rates


def load(out: Path, split: str, *names: str) -> dict[str, torch.Tensor]:
    return {n: torch.load(split_dir(out, split) / f"{n}.pt", weights_only=True) for n in names}


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def test_clip_frames_follow_each_files_own_clock(tmp_path: Path) -> None:
    rates = write_rates_tree(tmp_path / "amass")
    out = tmp_path / "out"
    result = prepare_vposer_datasets(
        {"train": ["DS"]}, tmp_path / "amass", out, config=clips_config(clip_stride=3)
    )
    record = manifest(out)["stages"]["stage_I"]["train"]
    files = [f["path"] for f in record["files"]]
    assert sorted(files) == sorted(rates)  # the short one is not a file of the split
    assert [item["path"] for item in record["too_short"]] == ["DS/short/m_poses.npz"]
    assert "too short for one clip" in record["too_short"][0]["reason"]
    assert record["skipped"] == []  # too short is not bad

    t = load(out, "train", "frame_id", "seq_id", "pose_body", "trans", "canon_yaw")
    assert t["frame_id"].shape == (result.samples["train"], T)
    assert t["pose_body"].shape == (result.samples["train"], T, 63)
    assert t["trans"].shape == (result.samples["train"], T, 3)
    assert t["seq_id"].shape == t["canon_yaw"].shape == (result.samples["train"],)
    for seq, path in enumerate(files):
        fps = rates[path]
        data = np.load(tmp_path / "amass" / path)
        n = data["poses"].shape[0]
        start, stop = trim_bounds(n, 0.1)
        ticks = exact_tick_count(start, stop, fps, TARGET)
        expected_clips = (ticks - T) // 3 + 1
        mine = t["seq_id"] == seq
        frame_id = t["frame_id"][mine].numpy().astype(np.int64)
        assert frame_id.shape == (expected_clips, T)
        tick = np.arange(expected_clips)[:, None] * 3 + np.arange(T)[None, :]
        tick_time = tick / TARGET
        frame_time = (frame_id - start) / fps
        assert np.all(np.abs(frame_time - tick_time) <= 0.5 / fps + 1e-9), path
        assert frame_id.min() >= start and frame_id.max() < stop
        # every clip frame's body pose is that source frame's, cast to float32
        source = data["poses"][:, 3:66].astype(np.float32)
        assert np.array_equal(t["pose_body"][mine].numpy(), source[frame_id])


def test_dataset_length_equals_what_it_yields(tmp_path: Path) -> None:
    write_rates_tree(tmp_path / "amass", frames=523)
    out = tmp_path / "out"
    prepare_vposer_datasets({"train": ["DS"]}, tmp_path / "amass", out, config=clips_config())
    dataset = VPoserDataset(split_dir(out, "train"), ["pose_body", "frame_id"])
    assert dataset.clip_frames == T and dataset.fps == TARGET
    yielded = sum(1 for _ in dataset)  # type: ignore[attr-defined]
    assert yielded == len(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, collate_fn=dict)
    assert sum(len(batch["pose_body"]) for batch in loader) == len(dataset)
    assert dataset[len(dataset) - 1]["pose_body"].shape == (T, 63)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def _turned(source: Path, target: Path, angle: float, shift: tuple[float, float]) -> None:
    """Write ``source`` turned about z by ``angle`` and shifted horizontally: the same motion
    elsewhere in the room."""
    with np.load(source) as data:
        values = {k: data[k] for k in data.files}
    Rz = rotz(torch.tensor(angle, dtype=torch.float64))
    root = torch.from_numpy(values["poses"][:, :3])
    values["poses"] = values["poses"].copy()
    values["poses"][:, :3] = matrot_to_aa(Rz @ aa_to_matrot(root)).numpy()
    trans = torch.from_numpy(values["trans"])
    values["trans"] = (trans @ Rz.T).numpy() + np.array([shift[0], shift[1], 0.0])
    target.parent.mkdir(parents=True, exist_ok=True)
    write_npz(target, values)


@pytest.mark.parametrize(("angle", "shift"), [(0.7, (3.0, -2.0)), (-2.9, (-40.0, 15.5))])
def test_canonical_clips_do_not_depend_on_where_the_motion_happened(
    tmp_path: Path, angle: float, shift: tuple[float, float]
) -> None:
    amass = tmp_path / "amass"
    motion(amass / "A/s1/m_poses.npz", 600, 120.0, seed=3, gender="male")
    _turned(amass / "A/s1/m_poses.npz", amass / "B/s1/m_poses.npz", angle, shift)
    out = tmp_path / "out"
    prepare_vposer_datasets({"train": ["A"], "vald": ["B"]}, amass, out, config=clips_config())
    fields = ("root_orient", "trans", "pose_body", "frame_id")
    a, b = load(out, "train", *fields), load(out, "vald", *fields)
    assert torch.equal(a["frame_id"], b["frame_id"]) and torch.equal(a["pose_body"], b["pose_body"])
    # both are float64 canonical forms equal to rounding (1e-12 covers it), each rounded once
    # to float32: at most one float32 step apart
    for name in ("root_orient", "trans"):
        a_value, b_value = a[name].numpy(), b[name].numpy()
        if name == "root_orient":
            b_value = _sign_like(b_value, a_value)
        step = np.spacing(np.maximum(np.abs(a_value), np.abs(b_value))).astype(np.float64)
        assert np.all(np.abs(a_value - b_value) <= step + 1e-12), name


def _rz(yaw: np.ndarray) -> np.ndarray:
    """Rotations about z ``(N, 3, 3)``, written out here."""
    c, s, zero, one = np.cos(yaw), np.sin(yaw), np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack([c, -s, zero, s, c, zero, zero, zero, one], axis=-1).reshape(-1, 3, 3)


def _reference_canonical(
    source_root: np.ndarray, source_trans: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Canonical clips computed here in float64 from the files' values ``(N, T, 3)``, with
    roma and numpy, not the package: the yaw that turns the first frame's forward axis (its
    third matrix column) onto +y, then root' = Rz(yaw) R, trans' = Rz(yaw) (trans - offset)."""
    root = torch.from_numpy(source_root)
    forward = roma.rotvec_to_rotmat(root[:, 0]).numpy()[:, :, 2]
    assert np.all(np.hypot(forward[:, 0], forward[:, 1]) > 0.5)  # upright: no fallback here
    # the heading's angle from +x is atan2(fy, fx); +y is at pi/2
    yaw = np.pi / 2 - np.arctan2(forward[:, 1], forward[:, 0])
    yaw = np.where(yaw > np.pi, yaw - 2 * np.pi, yaw)
    half = torch.from_numpy(yaw / 2)[:, None].expand(root.shape[:2])
    turn = torch.stack([0 * half, 0 * half, torch.sin(half), torch.cos(half)], dim=-1)  # XYZW
    root_c = roma.unitquat_to_rotvec(roma.quat_product(turn, roma.rotvec_to_unitquat(root)))
    offset = np.concatenate([source_trans[:, 0, :2], np.zeros((len(yaw), 1))], axis=1)
    trans_c = np.einsum("nij,ntj->nti", _rz(yaw), source_trans - offset[:, None])
    return root_c.numpy(), trans_c, yaw, offset


def _sign_like(rotvec: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``rotvec`` with, at an angle of pi (a first frame turned to face +y, for example),
    the sign nearest to ``like``'s: there v and -v are the same rotation, and rounding picks."""
    near_pi = np.linalg.norm(rotvec, axis=-1, keepdims=True) > np.pi - 1e-6
    closer = np.linalg.norm(like + rotvec, axis=-1, keepdims=True) < np.linalg.norm(
        like - rotvec, axis=-1, keepdims=True
    )
    return np.where(near_pi & closer, -rotvec, rotvec)


def _assert_float32_of(stored: np.ndarray, exact: np.ndarray, what: str) -> None:
    """``stored`` (float32) is ``exact`` (float64) rounded once: within half a float32 step
    of it (plus 1e-12 for the float64 rounding of either computation)."""
    assert stored.dtype == np.float32
    half_step = np.spacing(np.abs(stored)).astype(np.float64) / 2
    error = np.abs(stored.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(error - half_step), error.shape)
    assert np.all(error <= half_step + 1e-12), (
        f"{what}: {error[worst]:.3g} from the exact value at {worst}, "
        f"more than half a float32 step ({half_step[worst]:.3g})"
    )


def test_canonical_clips_are_the_float64_canonical_form_rounded_once(tmp_path: Path) -> None:
    """Each stored value is the canonical form of the file's float64 values, computed here
    independently, rounded once to float32: exact to half a float32 step (about 1e-7 m and
    2e-7 rad here), so a shift, an extra turn or a float32 source shows."""
    write_rates_tree(tmp_path / "amass")
    out = tmp_path / "out"
    prepare_vposer_datasets({"train": ["DS"]}, tmp_path / "amass", out, config=clips_config())
    files = [f["path"] for f in manifest(out)["stages"]["stage_I"]["train"]["files"]]
    names = ("root_orient", "trans", "canon_yaw", "canon_offset", "seq_id", "frame_id")
    t = {name: value.numpy() for name, value in load(out, "train", *names).items()}
    source_root = np.empty(t["root_orient"].shape, np.float64)
    source_trans = np.empty(t["trans"].shape, np.float64)
    for seq, path in enumerate(files):
        mine = t["seq_id"] == seq
        with np.load(tmp_path / "amass" / path) as data:
            assert data["poses"].dtype == data["trans"].dtype == np.float64
            source_root[mine] = data["poses"][:, :3][t["frame_id"][mine]]
            source_trans[mine] = data["trans"][t["frame_id"][mine]]
    root_c, trans_c, yaw, offset = _reference_canonical(source_root, source_trans)
    root_c = _sign_like(root_c, t["root_orient"])
    assert len(yaw) > 50
    _assert_float32_of(t["canon_yaw"], yaw, "canon_yaw")
    _assert_float32_of(t["canon_offset"], offset, "canon_offset")
    _assert_float32_of(t["root_orient"], root_c, "root_orient")
    _assert_float32_of(t["trans"], trans_c, "trans")
    # the restored source, from the stored float32 values, to a few float32 steps
    root, trans = uncanonicalize(*(torch.from_numpy(t[n]) for n in names[:4]))
    restored = aa_to_matrot(root.double()).numpy()
    source = roma.rotvec_to_rotmat(torch.from_numpy(source_root)).numpy()
    assert np.abs(restored - source).max() < 1e-6
    assert np.abs(trans.double().numpy() - source_trans).max() < 4 * np.spacing(np.float32(8))


def test_canonicalize_false_keeps_the_source_values(tmp_path: Path) -> None:
    write_rates_tree(tmp_path / "amass")
    out = tmp_path / "out"
    config = clips_config(canonicalize=False)
    prepare_vposer_datasets({"train": ["DS"]}, tmp_path / "amass", out, config=config)
    assert not (split_dir(out, "train") / "canon_yaw.pt").exists()
    path = manifest(out)["stages"]["stage_I"]["train"]["files"][0]["path"]
    t = load(out, "train", "root_orient", "frame_id", "seq_id")
    with np.load(tmp_path / "amass" / path) as data:
        frames = t["frame_id"][t["seq_id"] == 0].numpy()
        expected = data["poses"][:, :3][frames].astype(np.float32)
    assert np.array_equal(t["root_orient"][t["seq_id"] == 0].numpy(), expected)


def _yaw(root: torch.Tensor) -> torch.Tensor:
    """Heading of every frame: the angle of the forward axis' projection."""
    forward = aa_to_matrot(root.double())[..., :, 2]
    return torch.atan2(forward[..., 1], forward[..., 0])


def test_random_draws_are_per_clip_and_noise_per_frame(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=12_000, seed=5)
    splits = {"train": ["CMU", "KIT"], "vald": ["HumanEva"]}
    base = tmp_path / "base"
    prepare_vposer_datasets(splits, amass, base, config=clips_config(augmentations=[]))
    turned = tmp_path / "turned"
    prepare_vposer_datasets(
        splits, amass, turned, config=clips_config(augmentations=["random_zrot"])
    )
    a = load(base, "train", "root_orient", "trans")
    b = load(turned, "train", "root_orient", "trans")
    delta = torch.remainder(_yaw(b["root_orient"]) - _yaw(a["root_orient"]), 2 * math.pi)
    spread = (delta - delta[:, :1] + math.pi) % (2 * math.pi) - math.pi
    assert spread.abs().max() < 1e-4  # one angle for every frame of a clip
    assert delta[:, 0].std() > 0.5  # and different angles for different clips
    assert torch.allclose(b["trans"][:, 0], a["trans"][:, 0], atol=1e-6)  # about frame 0
    noisy = tmp_path / "noisy"
    noise = {"name": "noise", "fields": ["pose_body"], "sigma": 0.05}
    prepare_vposer_datasets(splits, amass, noisy, config=clips_config(augmentations=[noise]))
    diff = (
        load(noisy, "train", "pose_body")["pose_body"]
        - load(base, "train", "pose_body")["pose_body"]
    )
    assert not torch.allclose(diff[:, 0], diff[:, 1])  # drawn per frame
    assert 0.04 < float(diff.std()) < 0.06


def test_clip_augmentations_are_deterministic_for_any_worker_count(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=12_000, seed=5)
    splits = {"train": ["CMU", "KIT"], "vald": ["HumanEva"]}
    augmentations = [
        {"name": "mirror", "p": 0.5},
        "random_zrot",
        {"name": "noise", "sigma": 0.01},
        "matrot",
        "rot6d",
        "quat",
        "velocities",
    ]
    digests = []
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        config = clips_config(
            augmentations=augmentations, augment_passes=2, num_workers=workers, batch_size=64
        )
        prepare_vposer_datasets(splits, amass, out, config=config)
        files = sorted((out / "stage_III").rglob("*.pt"))
        digests.append({p.relative_to(out): p.read_bytes() for p in files})
    assert digests[0] == digests[1]
    t = load(tmp_path / "w0", "train", "trans_vel", "root_angvel", "pose_body_rot6d")
    assert t["trans_vel"].shape[1:] == (T, 3) and t["pose_body_rot6d"].shape[1:] == (T, 126)


def test_velocities_on_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="need sampling='clips'"):
        PrepareConfig(augmentations=["velocities", "matrot"])


class TinyTemporal(pl.LightningModule):
    """Predicts each clip's next body pose from the current one (a small temporal model)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.GRU(63, 64, batch_first=True)
        self.head = nn.Linear(64, 63)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        poses = batch["pose_body"]
        hidden, _ = self.net(poses[:, :-1])
        return nn.functional.mse_loss(self.head(hidden), poses[:, 1:])

    def training_step(self, batch: dict[str, torch.Tensor], i: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], i: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def test_lightning_fit_on_clips(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=15_000, seed=2)
    dm = VPoserDataModule(
        data_dir=tmp_path / "clips",
        amass_dir=amass,
        splits={"train": ["CMU", "KIT", "BML"], "vald": ["HumanEva"], "test": ["SFU"]},
        prepare={"sampling": "clips", "target_fps": 30, "clip_frames": 16, **QUIET},
        fields=["pose_body"],
        batch_size=16,
    )
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = TinyTemporal()
    trainer.fit(model, datamodule=dm)
    batch = next(iter(dm.train_dataloader()))
    assert batch["pose_body"].shape == (16, 16, 63)
    assert dm.dataset("train").clip_frames == 16 and dm.dataset("train").fps == 30
    assert math.isfinite(float(trainer.callback_metrics["val_loss"]))
    # validation serves the clips in order, every one once
    seen = torch.cat([b["pose_body"] for b in dm.val_dataloader()])
    assert torch.equal(seen, dm.dataset("vald").tensors["pose_body"])


def test_command_line_prepares_clips_and_info_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=10_000, seed=4)
    out = tmp_path / "out"
    splits = json.dumps({"train": ["CMU", "KIT"], "vald": ["HumanEva"]})
    args = ["prepare", "--amass-dir", str(amass), "--out", str(out), "--splits", splits]
    code = cli_main([*args, "--target-fps", "30", "--clip-frames", "16", "--no-progress"])
    assert code == 0
    config = manifest(out)["settings"]["config"]
    assert config["sampling"] == "clips" and config["clip_frames"] == 16
    assert "keep_rate" not in config  # not part of a clip folder's identity
    capsys.readouterr()
    assert cli_main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clips of 16 frames at 30 Hz" in text and "seconds of motion" in text
    png = tmp_path / "report.png"
    assert cli_main(["report", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    from vposer_data.report import joint_angles

    clips = torch.load(split_dir(out, "train") / "pose_body.pt", weights_only=True).shape[0]
    assert joint_angles(split_dir(out, "train"), max_samples=None).shape == (clips * 16, 21)
