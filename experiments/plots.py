"""PNG figures comparing runs (matplotlib's Figure API, through trainer.plots.png_bytes): a sweep's accuracy against
each swept key, and accuracy against the number of labels."""
import statistics

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from trainer import plots, rundir


def sweep_png(rows, swept_columns):
    """PNG bytes: test whole-captcha accuracy against each swept key (categories), each run a dot, means a line."""
    fig = Figure(figsize=(4 * len(swept_columns), 3.5))
    for ax, column in zip(fig.subplots(1, len(swept_columns), squeeze=False)[0], swept_columns):
        labels = list(dict.fromkeys(str(r[column]) for r in rows))  # first appearance follows grid order
        x = [labels.index(str(r[column])) for r in rows]
        y = [r["test_captcha_acc"] for r in rows]
        ax.scatter(x, y, color="gray", alpha=0.5, label="run")
        ax.plot(range(len(labels)), [statistics.mean(a for i, a in zip(x, y) if i == k) for k in range(len(labels))],
                marker="o", label="mean over the other keys")
        ax.set(xticks=range(len(labels)), xticklabels=labels, ylim=(-0.05, 1.05), xlabel=column,
               ylabel="test captcha acc")
        ax.margins(x=0.2)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return plots.png_bytes(fig)


def spaced_ticks(values, ratio=1.3):
    """The distinct `values` in order, less any under `ratio` times the last one kept: ticks on a log axis whose
    labels do not overlap (837 and 1,047 train images sit a quarter apart)."""
    ticks = []
    for value in sorted(set(values)):
        if not ticks or value >= ratio * ticks[-1]:
            ticks.append(value)
    return ticks


def plot_label_counts(rows, png_path):
    """Test whole-captcha accuracy against the number of labelled train images, one line per set (rows of
    experiments.real_benchmark's label counts)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in dict.fromkeys(row["set"] for row in rows):
        points = sorted((row["train_examples"], 100 * row["test_captcha_acc"]) for row in rows if row["set"] == name)
        ax.plot(*zip(*points), marker="o", label=name)
    counts = spaced_ticks(row["train_examples"] for row in rows)
    ax.set(xscale="log", xlabel="labelled train images", ylabel="test accuracy, whole captcha (%)", ylim=(0, 100),
           title="accuracy against the number of labels")
    ax.set_xticks(counts, [f"{count:,}" for count in counts])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    rundir.write_atomic(png_path, plots.png_bytes(fig))
