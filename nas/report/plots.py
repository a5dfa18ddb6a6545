"""Plots with matplotlib: training curves, proxy accuracy against cost (Pareto front marked),
best so far, and an architecture diagram. Each is written atomically."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..files import write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically like every other file nas writes."""
    import io

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def _plot(path: Path, epochs, train, test, ylabel: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, train, label="train", marker="o" if len(epochs) < 20 else None)
    ax.plot(epochs, test, label="test", marker="o" if len(epochs) < 20 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_curves(history, out: str | Path) -> None:
    out = Path(out)
    nan = float("nan")
    epochs = [h.epoch for h in history]
    _plot(out / "loss.png", epochs, [h.train_loss for h in history],
          [nan if h.test_loss is None else h.test_loss for h in history],
          "cross-entropy loss", "Loss (train includes label smoothing)")
    _plot(out / "error.png", epochs, [100 * (1 - h.train_acc) for h in history],
          [nan if h.test_acc is None else 100 * (1 - h.test_acc) for h in history], "error (%)", "Classification error")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats: smaller-or-equal cost and higher accuracy. Sorted by cost."""
    front, best = [], float("-inf")
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc))
            best = acc
    return front


def plot_tradeoff(records: list, key: str, path: Path, limit: int | None = None, winner=None) -> None:
    """Proxy accuracy against params or MACs, one colour per rung (scores compare within a rung
    only), rung 0's Pareto front marked, the winner starred."""
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for rung in sorted({r.rung for r in ok}):
        here = [r for r in ok if r.rung == rung]
        ax.scatter([getattr(r, key) for r in here], [100 * r.score for r in here], s=22, alpha=0.7, color=f"C{rung}",
                   label=f"rung {rung} ({here[0].epochs:g} epochs)" if here[0].epochs else "trials")
    first = [r for r in ok if r.rung == 0]
    front = pareto_front([(getattr(r, key), 100 * r.score) for r in first])
    if front:
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="C3", lw=1.2)
        ax.scatter(fx, fy, s=40, facecolors="none", edgecolors="C3", label="Pareto front (rung 0)")
    winner = winner or max(ok, key=lambda r: (r.rung, r.score), default=None)
    if winner is not None:
        ax.scatter([getattr(winner, key)], [100 * winner.score], marker="*", s=180, color="gold", edgecolors="k",
                   zorder=5, label="winner")
    if failed:
        bottom = min((100 * r.score for r in ok), default=0)
        ax.scatter([getattr(r, key) for r in failed], [bottom] * len(failed), marker="x", color="grey", label="failed")
    if limit:
        ax.axvline(limit, color="grey", ls="--", lw=1, label="budget")
    from matplotlib.ticker import EngFormatter
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel("trainable parameters" if key == "params" else "MACs per image")
    ax.set_ylabel("proxy accuracy (%)")
    ax.set_title(f"Proxy accuracy against {'parameters' if key == 'params' else 'MACs'}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_best_so_far(records: list, path: Path) -> None:
    """Each job's score against the search's time (or the job's place, in logs without a clock),
    one colour per rung, with each rung's best so far."""
    timed = all(r.elapsed for r in records)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for rung in sorted({r.rung for r in records}):
        xs, scores, bests, best = [], [], [], float("nan")
        for i, r in enumerate(records):
            if r.rung != rung:
                continue
            xs.append(r.elapsed / 60 if timed else i + 1)
            score = 100 * r.score if r.ok else float("nan")
            scores.append(score)
            best = score if best != best else max(best, score) if score == score else best
            bests.append(best)
        ax.scatter(xs, scores, s=14, alpha=0.6, color=f"C{rung}", label=f"rung {rung}")
        ax.step(xs, bests, where="post", color=f"C{rung}")
    ax.set_xlabel("search time (minutes)" if timed else "job")
    ax.set_ylabel("proxy accuracy (%)")
    ax.set_title("Proxy accuracy during the search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)

def family_colours() -> dict:
    from ..spaces.registry import FAMILIES
    return {**{name: f.colour for name, f in FAMILIES.items()}, "maxpool": "#d9d9d9", "avgpool": "#d9d9d9"}


def plot_architecture(arch, path: Path) -> None:
    """A left-to-right diagram: one box per layer, height by width (channels), colour by family."""
    from matplotlib.patches import FancyBboxPatch

    boxes = [("stem", f"conv {arch.stem_kernel}x{arch.stem_kernel}\n{arch.stem_width}", arch.stem_width, "conv")]
    for stage in arch.plan():
        for layer in stage:
            if layer.kind in ("maxpool", "avgpool"):
                boxes.append((layer.kind, "pool\n/2", 0, layer.kind))
            else:
                k = layer.knobs.get("kernel")
                label = f"{layer.kind}\n{layer.cout}" + (f" k{k}" if k else "") + (" /2" if layer.stride == 2 else "")
                boxes.append((layer.kind, label, layer.cout, layer.kind))
    head = f"avgpool {arch.head_pool}\n" + (f"fc {arch.head_hidden}\n" if arch.head_hidden else "") + f"fc {arch.num_classes}"
    boxes.append(("head", head, 0, "head"))
    widest = max(b[2] for b in boxes) or 1
    colours = family_colours()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.05 * len(boxes)), 2.6), dpi=120)
    for i, (_, label, width, family) in enumerate(boxes):
        h = 0.35 + 0.65 * (width / widest) if width else 0.45
        ax.add_patch(FancyBboxPatch((i + 0.08, 0.5 - h / 2), 0.84, h, boxstyle="round,pad=0.02",
                                    facecolor=colours.get(family, "#ffffff"), edgecolor="#333333", lw=0.8))
        ax.text(i + 0.5, 0.5, label, ha="center", va="center", fontsize=7)
        if i:
            ax.annotate("", xy=(i + 0.08, 0.5), xytext=(i - 0.08, 0.5), arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.set_xlim(0, len(boxes))
    ax.set_ylim(-0.1, 1.1)
    ax.axis("off")
    _save(fig, path)
