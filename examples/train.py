"""Train the example VPoser-style VAE with LightningCLI; the data comes from a YAML config.

    pip install -e '.[cli]'                          # LightningCLI needs jsonargparse
    vposer-data demo demo_data                       # a synthetic AMASS tree, prepared
    python examples/train.py fit --config examples/datamodule.yaml
    python examples/train.py fit --config examples/datamodule.yaml \\
        --data.amass_dir /data/amass --data.data_dir /data/vposer/V02 --trainer.devices 2

``prepare_data`` prepares ``data.data_dir`` from ``data.amass_dir`` on first use (once per
node) and reuses it afterwards; every ``data.*`` key is a VPoserDataModule argument. With the
unified ``lightning`` package, use ``lightning.pytorch.cli.LightningCLI`` and
``vposer_data.lightning.VPoserDataModule`` instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vposer_model import VPoserVAE

from vposer_data import VPoserDataModule
from vposer_data.synthetic import synthetic_tree_options


class TrainCLI(LightningCLI):
    """LightningCLI that says, before anything is built, what ``data.amass_dir`` holds."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        amass_dir = config.data.amass_dir
        if amass_dir is None:
            return
        options = synthetic_tree_options(amass_dir)
        if options is not None:
            rank_zero_info(
                f"data.amass_dir {amass_dir} is vposer_data's synthetic demo tree "
                f"({options['frames']:,} frames), not real AMASS"
            )
        elif not Path(amass_dir).is_dir():
            sys.exit(
                f"train.py: error: data.amass_dir {amass_dir} does not exist; run "
                "`vposer-data demo demo_data` first (the README's quick start), or pass "
                "--data.amass_dir <your AMASS root folder>"
            )


def main(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    return TrainCLI(
        VPoserVAE,
        VPoserDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
