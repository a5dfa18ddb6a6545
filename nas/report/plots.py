"""Training curves with matplotlib: loss.png and error.png, train and test over epochs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _plot(path: Path, epochs, train, test, ylabel: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, train, label="train", marker="o" if len(epochs) < 20 else None)
    ax.plot(epochs, test, label="test", marker="o" if len(epochs) < 20 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(history, out: str | Path) -> None:
    out = Path(out)
    epochs = [h.epoch for h in history]
    _plot(out / "loss.png", epochs, [h.train_loss for h in history], [h.test_loss for h in history],
          "cross-entropy loss", "Loss (train includes label smoothing)")
    _plot(out / "error.png", epochs, [100 * (1 - h.train_acc) for h in history],
          [100 * (1 - h.test_acc) for h in history], "error (%)", "Classification error")
