"""PNG figures (matplotlib, Agg backend): training curves and a grid of mispredicted captchas."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def plot_history(csv_path, png_path):
    """Plots every column of a CSVLogger file against the epoch: losses, accuracies, learning rate."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in (rows[0] if rows else {}):
        if key != "epoch":
            ax = axes[0] if "loss" in key else axes[1] if "acc" in key else axes[2]
            ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key)
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set(xlabel="epoch", title=title)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def plot_errors(images, true_texts, pred_texts, png_path, columns=4):
    """Saves a grid of images (uint8, HWC) titled 'true -> predicted'; nothing to plot -> empty figure."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, true, pred in zip(axes.flat, images, true_texts, pred_texts):
        ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
        ax.set_title(f"{true} -> {pred}", fontsize=10, color="red")
    if not len(images):
        fig.suptitle("no mispredictions")
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
