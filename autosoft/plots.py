"""PNG plots: reliability diagram, image grid, training curves, search history, Pareto front, confirmation.

matplotlib is imported inside each function (keeps `import autosoft` fast) and used
through its object API with the Agg canvas, so pyplot's global state and the user's
backend are never touched. Every function writes `path` (parents created) and returns
it as a pathlib.Path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from autosoft.errors import AutosoftError
from autosoft.metrics import reliability_bins

__all__ = [
    "reliability_diagram",
    "reliability_diagram_from_bins",
    "image_grid",
    "training_curves",
    "search_history",
    "pareto_front",
    "confirmation",
]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# ----------------------------------------------------------------------------
# Calibration

def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, path, *, n_bins: int = 15,
                        title: str | None = None) -> Path:
    """Reliability diagram of probabilities (N, K) vs labels (N,): accuracy per confidence bin,
    gap to the diagonal shaded, ECE in the legend, sample counts per bin below."""
    return reliability_diagram_from_bins(reliability_bins(probs, labels, n_bins), path, title=title)


def reliability_diagram_from_bins(bins: dict, path, *, title: str | None = None) -> Path:
    """Same diagram from a `metrics.reliability_bins` dict (e.g. evaluate(...)["reliability"])."""
    lower, upper = bins["lower"], bins["upper"]
    acc, conf, count = bins["accuracy"], bins["confidence"], bins["count"]
    width = [u - lo for lo, u in zip(lower, upper)]
    used = [c > 0 for c in count]

    fig = _figure(5.0, 6.0)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    hist = fig.add_subplot(grid[1], sharex=ax)

    ax.bar(lower, [a if u else 0.0 for a, u in zip(acc, used)], width=width, align="edge",
           color="#3b75af", edgecolor="black", linewidth=0.6, label="accuracy")
    # Gap bars span accuracy -> mean confidence of the bin: red above the bar = over-confident.
    gap_bottom = [min(a, c) for a, c in zip(acc, conf)]
    gap_height = [abs(c - a) if u else 0.0 for a, c, u in zip(acc, conf, used)]
    ax.bar(lower, gap_height, bottom=gap_bottom, width=width, align="edge", color="#d62728",
           alpha=0.35, edgecolor="#d62728", hatch="//", linewidth=0.6, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1.0, label="perfect calibration")
    ax.plot([], [], " ", label=f"ECE = {100 * bins['ece']:.2f}% ({bins['n_bins']} bins)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.tick_params(labelbottom=False)
    ax.set_title(title or "Reliability diagram")

    hist.bar(lower, count, width=width, align="edge", color="gray", edgecolor="black", linewidth=0.6)
    hist.set_xlabel("confidence (max probability)")
    hist.set_ylabel("count")
    fig.subplots_adjust(left=0.14, right=0.96, top=0.94, bottom=0.09)
    return _save(fig, path)


# ----------------------------------------------------------------------------
# Images

def image_grid(images: torch.Tensor, path, *, nrow: int, labels: list[str] | None = None,
               title: str | None = None) -> Path:
    """Grid of uint8 images (N, C, H, W), C in {1, 3}, `nrow` images per row, optional caption under each."""
    if images.ndim != 4 or images.dtype != torch.uint8 or images.shape[1] not in (1, 3):
        raise AutosoftError(
            f"images must be uint8 (N, C, H, W) with C 1 or 3; got {images.dtype} {tuple(images.shape)}"
        )
    n = images.shape[0]
    if n == 0:
        raise AutosoftError("image_grid needs at least one image")
    if not isinstance(nrow, int) or nrow < 1:
        raise AutosoftError(f"nrow (images per row) must be a positive integer; got {nrow!r}")
    if labels is not None and len(labels) != n:
        raise AutosoftError(f"labels must have one caption per image ({n}); got {len(labels)}")
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    arr = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    cell = 1.3
    caption = 0.25 if labels is not None else 0.0
    top = 0.4 if title else 0.0
    fig = _figure(ncol * cell, rows * (cell + caption) + top)
    for i in range(n):
        ax = fig.add_subplot(rows, ncol, i + 1)
        if arr.shape[-1] == 1:
            ax.imshow(arr[i, :, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(arr[i], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            ax.set_xlabel(labels[i], fontsize=8, labelpad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return _save(fig, path)


# ----------------------------------------------------------------------------
# Training and search

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def training_curves(history: list[dict], path) -> Path:
    """Per-epoch curves from metric dicts with key "epoch": keys containing "loss"/"nll" on the
    left panel, keys containing "acc"/"top1" on the right (e.g. train_loss, val_acc)."""
    if not history or any("epoch" not in h for h in history):
        raise AutosoftError("history must be a non-empty list of dicts, each with an 'epoch' key")
    keys = [k for k in dict.fromkeys(k for h in history for k in h) if k != "epoch"]
    loss_keys = [k for k in keys if "loss" in k or "nll" in k]
    acc_keys = [k for k in keys if "acc" in k or "top1" in k]
    if not loss_keys and not acc_keys:
        raise AutosoftError(f"history has no loss/nll or acc/top1 keys to plot; got {keys}")

    fig = _figure(10.0, 4.0)
    panels = [(k, name) for k, name in ((loss_keys, "loss"), (acc_keys, "accuracy")) if k]
    for i, (plot_keys, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k in plot_keys:
            pts = [(h["epoch"], h[k]) for h in history if _is_number(h.get(k))]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def search_history(scores: Sequence[float | None], path, *, objective_name: str = "val_acc",
                   maximize: bool = True, stopped: Sequence[bool] | None = None) -> Path:
    """Score per trial and the best-so-far line over finished trials.

    Failed trials (None) are red x at the bottom; trials stopped early (`stopped`) are hollow
    grey markers at the score they had when stopped, and never count as the best.
    """
    if len(scores) == 0:
        raise AutosoftError("search_history needs at least one trial score")
    stopped = list(stopped) if stopped is not None else [False] * len(scores)
    ok = [(i, s) for i, s in enumerate(scores) if s is not None and _is_number(s)]
    failed = [i for i, s in enumerate(scores) if s is None or not _is_number(s)]
    full = [(i, s) for i, s in ok if not stopped[i]]
    partial = [(i, s) for i, s in ok if stopped[i]]

    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    if partial:
        xs, ys = zip(*partial)
        ax.scatter(xs, ys, s=14, facecolors="none", edgecolors="#999999",
                   label=f"stopped early ({len(partial)}, score when stopped)")
    if full:
        xs, ys = zip(*full)
        ax.scatter(xs, ys, s=14, color="#3b75af", label=f"finished ({len(full)})")
        best, best_line = None, []
        pick = max if maximize else min
        for i, s in enumerate(scores):
            if s is not None and _is_number(s) and not stopped[i]:
                best = s if best is None else pick(best, s)
            best_line.append(best)
        ax.step(range(len(scores)), [math.nan if b is None else b for b in best_line], where="post",
                color="#d62728", label="best so far")
    if ok:
        ys = [s for _, s in ok]
        lo, hi = min(ys), max(ys)
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
        ax.set_ylim(lo - 2 * pad, hi + pad)
    if failed:
        bottom = ax.get_ylim()[0] + 0.02 * (ax.get_ylim()[1] - ax.get_ylim()[0])
        ax.scatter(failed, [bottom] * len(failed), marker="x", color="#d62728", s=30,
                   label=f"failed ({len(failed)})", clip_on=False)
    ax.set_xlabel("trial")
    ax.set_ylabel(objective_name)
    ax.set_title(f"{objective_name} per trial ({'maximise' if maximize else 'minimise'})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def pareto_front(points: Sequence[tuple[float, float]], front_mask: Sequence[bool], path, *,
                 names: tuple[str, str] = ("val_acc", "ece")) -> Path:
    """Scatter of two objectives for all trials, the Pareto-optimal ones (front_mask) highlighted and joined."""
    if len(points) == 0 or len(points) != len(front_mask):
        raise AutosoftError(
            f"points and front_mask must be non-empty and equally long; got {len(points)} and {len(front_mask)}"
        )
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    rest = [p for p, m in zip(points, front_mask) if not m]
    front = sorted(p for p, m in zip(points, front_mask) if m)
    if rest:
        ax.scatter(*zip(*rest), s=14, color="gray", alpha=0.6, label="trial")
    if front:
        ax.plot(*zip(*front), "-o", color="#d62728", markersize=5, label=f"Pareto front ({len(front)})")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def confirmation(groups: Sequence[tuple[str, bool, Sequence[float]]], path, *, metric: str = "val_acc",
                 maximize: bool = True, winner: str | None = None) -> Path:
    """The confirmation stage: each policy's score per seed (dots), mean and std (bar), best first.

    `groups`: (name, is_baseline, scores). Baselines are drawn in grey and the best baseline's
    mean as a dashed line, so a searched policy's margin over it can be read off directly.
    """
    groups = [g for g in groups if len(g[2]) > 0]
    if not groups:
        raise AutosoftError("confirmation plot needs at least one policy with a score")
    sign = 1 if maximize else -1
    groups.sort(key=lambda g: -sign * sum(g[2]) / len(g[2]))
    fig = _figure(max(5.0, 0.9 * len(groups) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    best_base = None
    for i, (name, baseline, scores) in enumerate(groups):
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)) ** 0.5 if len(scores) > 1 else 0.0
        colour = "#888888" if baseline else ("#d62728" if name == winner else "#3b75af")
        ax.scatter([i] * len(scores), scores, s=16, color=colour, alpha=0.6)
        ax.errorbar([i], [mean], yerr=[std], fmt="_", color=colour, capsize=8, markersize=20)
        if baseline and (best_base is None or sign * mean > sign * best_base):
            best_base = mean
    if best_base is not None:
        ax.axhline(best_base, color="#888888", linestyle="--", linewidth=1, label="best baseline (mean)")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(groups)), [g[0] + (" (baseline)" if g[1] else "") for g in groups],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"confirmation: {metric} per seed, mean ± std" + (f"; winner {winner}" if winner else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
