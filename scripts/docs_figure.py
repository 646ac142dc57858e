"""Draw the README's picture, ``docs/stick_figure.png``, with the package's own code.

A small synthetic AMASS tree is prepared as clips (T=16 at 30 Hz) with ``joints`` and
``contacts`` from made-up SMPL+H models (never the licensed ones), and the test clip whose feet
touch the floor most is drawn as a stick figure (``vposer_data.stick_figure``).

    python scripts/docs_figure.py [OUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from vposer_data import VPoserDataset
from vposer_data.cli import main
from vposer_data.stick_figure import MotionStrip, draw_stick_figures

OUT = Path(__file__).resolve().parents[1] / "docs" / "stick_figure.png"


def draw(out: Path) -> Path:
    """Prepare the demo clips in a temporary folder and draw one clip into ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        flags = ["--target-fps", "30", "--clip-frames", "16", "--no-progress"]
        augment = ["--augment", "joints", "--augment", "contacts", "--augment", "matrot"]
        if main(["demo", str(demo), "--frames", "8000", *flags, *augment]) != 0:
            raise SystemExit("the demo failed")
        data = VPoserDataset(demo / "vposer" / "stage_III" / "test", ["joints", "contacts"])
        joints, contacts = data.tensors["joints"].numpy(), data.tensors["contacts"].numpy()
        clip = int(np.argmax(contacts.mean(axis=(1, 2))))
        pick = np.arange(0, 16, 2)
        strip = MotionStrip(joints[clip, pick], contacts[clip, pick], "")
        fig, ax = plt.subplots(figsize=(8, 2.2), dpi=72)
        draw_stick_figures(ax, strip)
        ax.set_title("one clip (every other frame at 30 Hz), feet red in contact", fontsize=9)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
        plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
