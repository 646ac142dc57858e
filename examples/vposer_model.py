"""A small VPoser-style VAE over the body pose, as a LightningModule (an example, not a replica).

As in VPoser (Pavlakos et al., "Expressive Body Capture", CVPR 2019): the encoder maps the 21
body joint rotations (axis-angle, ``pose_body`` (N, 63)) to a Gaussian over a small latent
space; the decoder maps a latent code to a continuous 6D rotation per joint, turned into
rotation matrices by Gram-Schmidt; the loss is the squared error between decoded and input
rotation matrices plus a weighted KL divergence to the standard normal.
"""

from __future__ import annotations

import itertools

import roma
import torch
from pytorch_lightning import LightningModule
from torch import nn

NUM_BODY_JOINTS = 21


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class VPoserVAE(LightningModule):
    """Encoder/decoder MLPs over ``pose_body``; batches are dicts from VPoserDataModule.

    Args:
        latent_dim: size of the latent code (VPoser v2: 32).
        hidden_dim: width of the hidden layers (VPoser v2: 512).
        kl_weight: weight of the KL term against the rotation-matrix reconstruction error.
        lr: Adam learning rate.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        hidden_dim: int = 512,
        kl_weight: float = 5e-3,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        in_dim = NUM_BODY_JOINTS * 3
        self.encoder = nn.Sequential(_mlp([in_dim, hidden_dim, hidden_dim]), nn.LeakyReLU(0.2))
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = _mlp([latent_dim, hidden_dim, hidden_dim, NUM_BODY_JOINTS * 6])

    def encode(self, pose_body: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(pose_body)
        return self.to_mu(hidden), self.to_logvar(hidden).clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, latent_dim) -> body joint rotation matrices (N, 21, 3, 3)."""
        six_d = self.decoder(z).reshape(-1, NUM_BODY_JOINTS, 3, 2)
        return roma.special_gramschmidt(six_d)

    def forward(self, pose_body: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(pose_body)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"matrot": self.decode(z), "mu": mu, "logvar": logvar}

    def _losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pose_body = batch["pose_body"].float()
        target = roma.rotvec_to_rotmat(pose_body.reshape(-1, NUM_BODY_JOINTS, 3))
        out = self(pose_body)
        recon = (out["matrot"] - target).pow(2).sum(dim=(-1, -2, -3)).mean()
        kl = -0.5 * (1 + out["logvar"] - out["mu"].pow(2) - out["logvar"].exp()).sum(-1).mean()
        return {"loss": recon + self.hparams.kl_weight * kl, "recon": recon, "kl": kl}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch)
        size = batch["pose_body"].shape[0]
        self.log("train_loss", losses["loss"], prog_bar=True, batch_size=size)
        self.log("train_kl", losses["kl"], batch_size=size)
        return losses["loss"]

    def _evaluate(self, batch: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        losses = self._losses(batch)
        size = batch["pose_body"].shape[0]
        self.log(f"{prefix}_loss", losses["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{prefix}_recon", losses["recon"], batch_size=size, sync_dist=True)
        return losses["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The latent means of the batch's body poses."""
        return self.encode(batch["pose_body"].float())[0]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
