"""VPoserDataModule for the unified ``lightning`` package (``import lightning.pytorch as pl``),
whose ``Trainer`` accepts only its own ``LightningDataModule``.

The same class body as :class:`vposer_data.VPoserDataModule` (which is a
``pytorch_lightning.LightningDataModule``), on ``lightning.pytorch.LightningDataModule``:

    import lightning.pytorch as pl
    from vposer_data.lightning import VPoserDataModule

With ``lightning.pytorch.cli.LightningCLI``, pass this class, or name it in a YAML config as
``class_path: vposer_data.lightning.VPoserDataModule``. Needs ``pip install lightning``
(``vposer-data[lightning]``); ``pytorch-lightning`` stays the package's own dependency.
"""

from __future__ import annotations

import lightning.pytorch as pl

from vposer_data.datamodule import VPoserDataModuleBody

__all__ = ["VPoserDataModule"]


# The body is type-checked as a pytorch_lightning DataModule; mypy sees lightning.pytorch's
# copy of the same classes as another type, whose attributes (trainer, hparams) then differ.
class VPoserDataModule(VPoserDataModuleBody, pl.LightningDataModule):  # type: ignore[misc]
    __doc__ = VPoserDataModuleBody.__doc__  # one text for both namespaces' classes
