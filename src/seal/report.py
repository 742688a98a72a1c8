"""Reports a person reads: Markdown tables and PNG plots for ReST-EM runs, evaluations and forgetting runs.

    write_run_report("runs/r1")                          # runs/r1/report.md + rewards.png
    accuracy_plot({"base": 0.1, "SEAL": 0.3}, "acc.png")
    retention_heatmap(result.as_dict(), "forgetting.png")  # a seal.continual.evaluate_forgetting result
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seal.io import atomic_savefig, atomic_write_text


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def round_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    run_dir = Path(run_dir)
    rounds = sorted(run_dir.glob("round-*/metrics.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in rounds]


def reward_plot(metrics: list[dict[str, Any]], path: str | Path) -> Path:
    """Mean reward per round with its spread (std error bars) and every individual reward as a dot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    xs = [m["round"] for m in metrics]
    ax.errorbar(xs, [m["mean_reward"] for m in metrics], yerr=[m["std_reward"] for m in metrics], fmt="o-",
                capsize=4, label="mean reward ± std")
    for m in metrics:
        rs = m.get("rewards", [])
        ax.scatter([m["round"] + 0.08] * len(rs), rs, s=8, alpha=0.35, color="gray")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("ReST-EM round")
    ax.set_ylabel("reward (accuracy gain)")
    ax.set_xticks(xs)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def accuracy_plot(accuracies: dict[str, float], path: str | Path, title: str = "accuracy per method",
                  intervals: dict[str, list[float]] | None = None) -> Path:
    """Bars of accuracy per method; with ``intervals`` (method -> [lo, hi]) their 95 % intervals as error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(accuracies)), 3.5), dpi=120)
    names = list(accuracies)
    vals = [100 * accuracies[n] for n in names]
    err = None
    if intervals:
        err = [[max(0.0, v - 100 * intervals[n][0]) for n, v in zip(names, vals, strict=True)],
               [max(0.0, 100 * intervals[n][1] - v) for n, v in zip(names, vals, strict=True)]]
    bars = ax.bar(names, vals, color="#4C72B0", yerr=err, capsize=3 if err else 0)
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def retention_heatmap(result: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """The retention matrix as a heatmap (like the paper's Figure 6): a 'base' row, then one row per step."""
    import numpy as np

    from seal.continual.forgetting import summarize

    plt = _plt()
    matrix, base = result["matrix"], result["base"]
    n = len(base)
    data = np.full((n + 1, n), np.nan)
    data[0] = base
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v is not None:
                data[i + 1, j] = v
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * n, 1.4 + 0.5 * (n + 1)), dpi=130)
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (r, c), v in np.ndenumerate(data):
        if not np.isnan(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.axhline(0.5, color="white", lw=1.5)
    ax.set_xticks(range(n), [str(j + 1) for j in range(n)])
    ax.set_yticks(range(n + 1), ["base"] + [f"after {i + 1}" for i in range(n)])
    ax.set_xlabel("passage evaluated")
    ax.set_ylabel("model")
    s = result.get("summary") or summarize(matrix, base)

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    guard = ", guard" if result.get("guard") else ""
    ax.set_title(title or f"{result.get('strategy', '?')}{guard}: right after {f(s['diagonal_mean'])}, "
                          f"after all {f(s['final_mean'])}\nforgetting {f(s['forgetting'])}, "
                          f"base {f(s['base_mean'])}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def write_run_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    metrics = round_metrics(run_dir)
    lines = [f"# ReST-EM run `{run_dir.name}`", "",
             "| round | contexts × samples × repeats | mean reward | std | positive | selected | failed edits "
             "| policy loss | wall (s) |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in metrics:
        loss = f"{m['policy_final_loss']:.3f}" if m.get("policy_final_loss") is not None else "-"
        lines.append(f"| {m['round']} | {m['contexts']} × {m['samples']} × {m['repeats']} | {m['mean_reward']:+.3f} "
                     f"| {m['std_reward']:.3f} | {100 * m['positive_fraction']:.0f} % | {m['selected']} | "
                     f"{m['failed_edits']} | {loss} | {m['wall_s']:.0f} |")
    if metrics:
        reward_plot(metrics, run_dir / "rewards.png")
        lines += ["", "![mean reward per round](rewards.png)"]
    return atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
