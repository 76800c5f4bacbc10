"""Figures of the kit's reports, drawn with matplotlib (Agg backend), each written as PNG and SVG
where a report cites it. One colour per method across every figure."""

import os
import statistics
import textwrap
from typing import List, Sequence

from .results import METHODS, Column, ordered


def _pyplot():
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's import sets DEBUG logging
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# One colour per method in every panel and figure (matplotlib's tab10, in Table 2's order).
METHOD_COLOURS = {
    "std": "tab:gray",
    "std++": "tab:brown",
    "rdrop": "tab:green",
    "r3f": "tab:blue",
    "r4f": "tab:purple",
    "r3f-rel": "tab:cyan",
    "smart": "tab:orange",
    "freelb": "tab:red",
}
BOX_FROM = 5  # seeds: a box plot from 5 on, below it the points and their median only


def method_colour(method: str, others: List[str]) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    spare = ["tab:olive", "tab:pink", "black", "gold"]
    return spare[others.index(method) % len(spare)]


def distributions(path: str, cells, columns: Sequence[Column], value, ylabel: str, references=()) -> List[str]:
    """One panel per column, each with its own y axis (tasks differ in metric and range); per
    method every seed as a point in the method's colour, their median as a bar, and a box when
    there are BOX_FROM seeds or more; n under each method's name; each reference row (e.g. the
    majority class) with a value in the column's own metric as a labelled dashed line. Written as
    PNG (200 dpi) and SVG; returns the paths. No title: the caption belongs to the text around
    the figure."""
    plt = _pyplot()

    # inches: a slot per method wide enough for its name written level (~0.075 inch a character
    # at 8 pt), plus the y axis's margin
    names = [m for col in columns for m in cells.get(col.label, {})]
    slot = max(0.8, 0.075 * max(map(len, names), default=0) + 0.2)
    most = max((len(cells.get(col.label, {})) for col in columns), default=1)
    panel_width = max(3.4, slot * (most + 0.2) + 1.0)
    ncols = max(1, min(4, len(columns), int(14 // panel_width)))  # rows of at most ~14 inches
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_width * ncols, 3.2 * nrows), squeeze=False)
    others = sorted({m for per in cells.values() for m in per} - set(METHOD_COLOURS))
    for ax, col in zip(axes.flat, columns):
        methods = ordered(cells.get(col.label, {}), METHODS)
        ticks = []
        for x, method in enumerate(methods, 1):
            ys = [y for y in (value(r) for r in cells[col.label][method]) if y is not None]
            colour = method_colour(method, others)
            ticks.append(f"{method}\nn={len(ys)}")
            if not ys:
                continue
            if len(ys) >= BOX_FROM:
                ax.boxplot(
                    [ys],
                    positions=[x],
                    widths=0.55,
                    showfliers=False,
                    medianprops={"color": colour},
                    boxprops={"color": colour},
                    whiskerprops={"color": colour},
                    capprops={"color": colour},
                )
            else:
                ax.hlines(statistics.median(ys), x - 0.28, x + 0.28, color=colour, linewidth=2, zorder=4)
            offsets = [0.16 * (i - (len(ys) - 1) / 2) / max(1, len(ys) - 1) for i in range(len(ys))]
            ax.scatter([x + o for o in offsets], ys, s=16, color=colour, edgecolor="black", linewidth=0.4, zorder=5)
        ax.set_xticks(range(1, len(methods) + 1))
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlim(0.4, len(methods) + 0.6)
        for ref, style in zip(references, ("--", ":", "-.")):
            found = ref.values.get(col.label)
            if found is not None and found[1] == col.name:
                ax.axhline(found[0], color="black", linestyle=style, linewidth=0.8)
                ax.annotate(ref.name, (0.42, found[0]), fontsize=6, va="bottom", xycoords=("axes fraction", "data"))
        ax.set_title(col.label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel(textwrap.fill(ylabel, 36))  # a panel is ~3 inches tall
    for ax in list(axes.flat)[len(columns) :]:
        ax.set_visible(False)
    fig.tight_layout()
    stem = os.path.splitext(path)[0]
    fig.savefig(stem + ".png", dpi=200)
    fig.savefig(stem + ".svg")
    plt.close(fig)
    return [stem + ".png", stem + ".svg"]


# ---- the sigma sweep

# One colour per variant family of the sigma sweep; R-Drop and standard as horizontal references.
SIGMA_COLOURS = {"independent": "tab:blue", "same": "tab:orange", "rdrop": "tab:green", "std": "tab:gray"}


def sigma_figure(records: List[dict], task: str, path_prefix: str) -> None:
    """The sigma sweep: dev metric and noise_kl against sigma, each seed a point."""
    plt = _pyplot()

    fig, (acc_ax, kl_ax) = plt.subplots(1, 2, figsize=(10, 5))
    sigmas = sorted({r["sigma"] for r in records if r["sigma"] is not None})
    for family, same in (("independent", False), ("same", True)):
        rows = [r for r in records if r["sigma"] is not None and r["variant"].endswith("-same") == same]
        label = "R3F, independent dropout" if not same else "R3F, same dropout (noise only)"
        counts = sorted({sum(r["sigma"] == s for r in rows) for s in {r["sigma"] for r in rows}})
        n = "/".join(map(str, counts))
        dodge = 1.08 if same else 1 / 1.08  # the two families side by side at each sigma (log axis)
        acc_ax.scatter(
            [r["sigma"] * dodge for r in rows],
            [r["best"] for r in rows],
            color=SIGMA_COLOURS[family],
            s=14,
            label=f"{label}, each seed (n={n} per sigma)",
        )
        means = [
            (s * dodge, statistics.fmean([r["best"] for r in rows if r["sigma"] == s]))
            for s in sigmas
            if any(r["sigma"] == s for r in rows)
        ]
        acc_ax.plot([s for s, _ in means], [m for _, m in means], color=SIGMA_COLOURS[family], linewidth=1)
        kls = [(r["sigma"] * dodge, r["noise_kl"]) for r in rows if r["noise_kl"] and r["noise_kl"] > 0]
        kl_ax.scatter([s for s, _ in kls], [k for _, k in kls], color=SIGMA_COLOURS[family], s=14, label=label)
    for reference, label in (("rdrop", "R-Drop (no noise)"), ("std", "standard")):
        best = [r["best"] for r in records if r["variant"] == reference]
        if best:
            acc_ax.axhline(
                statistics.fmean(best),
                color=SIGMA_COLOURS[reference],
                linestyle="--",
                label=f"{label}: mean, band [min, max] (n={len(best)})",
            )
            acc_ax.axhspan(min(best), max(best), color=SIGMA_COLOURS[reference], alpha=0.12)
    rdrop_kl = [r["symm_kl"] for r in records if r["variant"] == "rdrop" and r["symm_kl"]]
    if rdrop_kl and statistics.fmean(rdrop_kl) > 0:
        kl_ax.axhline(
            statistics.fmean(rdrop_kl),
            color=SIGMA_COLOURS["rdrop"],
            linestyle="--",
            label="R-Drop's symm_kl (dropout disagreement)",
        )
    metric = records[0]["metric"] if records else "accuracy"
    for ax in (acc_ax, kl_ax):
        ax.set_xscale("log")
        ax.set_xlabel("sigma / token-embedding RMS")
    acc_ax.set_ylabel(f"best dev {metric} (%)")
    if kl_ax.lines or kl_ax.collections:
        kl_ax.set_yscale("log")  # noise_kl spans orders of magnitude; zeros (rounded away) are not drawn
    kl_ax.set_ylabel("noise_kl (nats per sentence)")
    for ax in (acc_ax, kl_ax):  # below the axes, where no point hides behind them
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    acc_ax.set_title(f"{task}: dev metric")
    kl_ax.set_title(f"{task}: KL made by the noise alone")
    fig.tight_layout()
    fig.savefig(path_prefix + ".png", dpi=200)
    fig.savefig(path_prefix + ".svg")
    plt.close(fig)


# ---- probing


def _seed_points(ax, xs, values_by_x, colour, label=None, offset=0.0):
    """Each seed a point at its x (nudged by ``offset``), the mean over seeds a line through them."""
    means = []
    for x in xs:
        values = values_by_x.get(x, [])
        ax.scatter([x + offset] * len(values), values, s=12, color=colour, alpha=0.6, linewidths=0)
        means.append(statistics.fmean(values) if values else float("nan"))
    ax.plot([x + offset for x in xs], means, marker="_", markersize=14, color=colour, label=label)


def probing_figure(
    path: str,
    experiment: str,
    stages,
    records: Sequence[dict],
    method_order: Sequence[str],
    by_metric: bool = False,
) -> None:
    """Figure 3 (a panel per probed task: every method, each seed a point, the mean a bar mark),
    4 (the source probe along the chain) or 5 (a panel per task, probe after each cycle): each
    record's ``score`` (its accuracy, or ``by_metric`` its task's metric, named in the panel's
    title), each panel on its own y axis, n (seeds) in the legend."""
    plt = _pyplot()

    methods = ordered({r["method"] for r in records}, method_order)
    colours = {m: method_colour(m, methods) for m in methods}
    n = {m: len({r["seed"] for r in records if r["method"] == m}) for m in methods}

    title = lambda t: f"probe {t}" + (f" ({metric_of[t]})" if by_metric else "")  # noqa: E731
    metric_of = {r["probe_task"]: r.get("metric") for r in records}

    def values(method, key, keys):
        out = {}
        for r in records:
            if r["method"] == method and all(r[k] == v for k, v in keys.items()):
                out.setdefault(r[key], []).append(r["score"])
        return out

    if experiment == "cross-task":
        tasks = list(dict.fromkeys(r["probe_task"] for r in records))
        fig, axes = plt.subplots(1, len(tasks), figsize=(0.5 * len(methods) * len(tasks) + 2, 3.4), squeeze=False)
        axes = list(axes.flat)
        for ax, t in zip(axes, tasks):
            for i, m in enumerate(methods):
                _seed_points(
                    ax, [i], {i: values(m, "probe_task", {"probe_task": t}).get(t, [])}, colours[m], f"{m} (n={n[m]})"
                )
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=8)
            ax.set_title(title(t))
        fig.suptitle(f"Figure 3: probing after fine-tuning on {stages[0].task}")
    elif experiment == "sequential":
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        positions = sorted({r["position"] for r in records})
        for i, m in enumerate(methods):
            by_position = values(m, "position", {})
            xs = [p for p in positions if p in by_position]
            _seed_points(ax, xs, by_position, colours[m], f"{m} (n={n[m]})", offset=0.04 * i)
        names = {0: "pre-trained", **{s.position: s.task for s in stages}}
        ax.set_xticks(positions)
        ax.set_xticklabels([names[p] for p in positions])
        ax.set_xlabel("after fine-tuning on")
        ax.set_title(f"Figure 4: {stages[0].probes[0]} probe along the chain")
        axes = [ax]
    else:
        tasks = list(dict.fromkeys(t for s in stages for t in s.probes))
        fig, axes = plt.subplots(1, len(tasks), figsize=(3 * len(tasks), 3.2), squeeze=False)
        axes = list(axes.flat)
        for ax, t in zip(axes, tasks):
            for i, m in enumerate(methods):
                by_cycle = values(m, "cycle", {"probe_task": t})
                _seed_points(ax, sorted(by_cycle), by_cycle, colours[m], f"{m} (n={n[m]})", offset=0.04 * i)
            ax.set_title(title(t))
            ax.set_xticks(sorted({s.cycle for s in stages} | {r["cycle"] for r in records}))
            ax.set_xlabel("cycle (0: pre-trained)")
        fig.suptitle("Figure 5: probes after each cycle")
    axes[0].set_ylabel("probe score (the task's metric)" if by_metric else "probe accuracy (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
