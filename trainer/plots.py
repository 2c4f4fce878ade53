"""PNG figures of one run (matplotlib's Figure API: no pyplot, no global backend): training curves, mispredicted
captchas. Figures comparing runs are experiments.plots'."""
import csv
import io

import tensorflow as tf
from matplotlib.figure import Figure  # savefig renders PNG with Agg, no GUI backend involved

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
    rundir.write_atomic(png_path, png_bytes(fig))


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
    return png_bytes(fig)


def plot_errors(images, true_texts, pred_texts, png_path, columns=4):
    """Saves errors_png's grid to `png_path`."""
    rundir.write_atomic(png_path, errors_png(images, true_texts, pred_texts, columns))


def png_bytes(fig):
    """A figure's PNG bytes."""
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()
