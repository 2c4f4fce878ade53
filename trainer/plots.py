"""PNG figures (matplotlib's Figure API: no pyplot, no global backend): training curves, mispredicted captchas."""
import csv
import io

import tensorflow as tf
from matplotlib.figure import Figure  # savefig renders PNG with Agg, no GUI backend involved
from matplotlib.ticker import NullFormatter

from trainer import rundir


def plot_history(csv_path, png_path):
    """Plots every column of a CSVLogger file against the epoch: losses, accuracies, learning rate, step rate."""
    with tf.io.gfile.GFile(csv_path) as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig = Figure(figsize=(20, 4))
    axes = fig.subplots(1, 4)
    for key in (rows[0] if rows else {}):
        if key != "epoch":
            ax = (axes[0] if "loss" in key else axes[1] if "acc" in key else axes[2] if "learning_rate" in key
                  else axes[3])
            ax.plot(epochs, [float(r[key]) if r[key] else float("nan") for r in rows], marker="o", label=key)
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate", "train steps per second")):
        ax.set(xlabel="epoch", title=title)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    rundir.write_atomic(png_path, _png(fig))


def errors_png(images, true_texts, pred_texts, columns=4):
    """PNG bytes: a grid of images (uint8, HWC) titled 'true -> predicted'; nothing to plot -> an empty figure."""
    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(3 * columns, 1.8 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, true, pred in zip(axes.flat, images, true_texts, pred_texts):
        ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
        ax.set_title(f"{true} -> {pred}", fontsize=10, color="red")
    if not len(images):
        fig.suptitle("no mispredictions")
    fig.tight_layout()
    return _png(fig)


def plot_errors(images, true_texts, pred_texts, png_path, columns=4):
    """Saves errors_png's grid to `png_path`."""
    rundir.write_atomic(png_path, errors_png(images, true_texts, pred_texts, columns))


def plot_label_counts(rows, png_path):
    """Test whole-captcha accuracy against the number of labelled train images, one line per set (rows of
    trainer.real_benchmark's label counts)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in dict.fromkeys(row["set"] for row in rows):
        points = sorted((row["train_examples"], 100 * row["test_captcha_acc"]) for row in rows if row["set"] == name)
        ax.plot(*zip(*points), marker="o", label=name)
    counts = sorted({row["train_examples"] for row in rows})
    ax.set(xscale="log", xlabel="labelled train images", ylabel="test accuracy, whole captcha (%)", ylim=(0, 100),
           title="accuracy against the number of labels")
    ax.set_xticks(counts, [f"{count:,}" for count in counts])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    rundir.write_atomic(png_path, _png(fig))


def _png(fig):
    """A figure's PNG bytes."""
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()
