"""Train the example VPoser-style VAE with LightningCLI; the data comes from a YAML config.

    vposer-data demo demo_data                       # a synthetic AMASS tree, prepared
    python examples/train.py fit --config examples/datamodule.yaml
    python examples/train.py fit --config examples/datamodule.yaml \\
        --data.amass_dir /data/amass --data.data_dir /data/vposer/V02 --trainer.devices 2

``prepare_data`` prepares ``data.data_dir`` from ``data.amass_dir`` on first use (once per
node) and reuses it afterwards; every ``data.*`` key is a VPoserDataModule argument.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytorch_lightning.cli import LightningCLI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vposer_model import VPoserVAE

from vposer_data import VPoserDataModule


def main(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    return LightningCLI(
        VPoserVAE,
        VPoserDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
