"""How tall the characters stand in a dataset's frame, measured on the ink of a sample of its train split; what
`--model=auto` sizes its input by.

    python -c "from trainer import ink; from trainer.spec import DatasetSpec; print(ink.measure(DatasetSpec.load('data/real')))"

Ink is every pixel far from the image's background (the median colour of its border). In each column that holds
ink, the ink's extent is the distance from its top pixel to its bottom one; an image's character height is the
80th percentile of those extents (vertical strokes span a character, thin strike lines and dots span little),
and the dataset's is the median over the sample, as a fraction of the frame's height. Strike lines crossing a
column inflate it a little, which errs on the side of a larger input.
"""
import numpy as np

from trainer import data

SAMPLE = 256  # train images measured (~0.3 s at 460x80)
INK_DISTANCE = 96  # summed |RGB - background| above which a pixel is ink (a third of the way to black per channel)
COLUMN_PERCENTILE = 80


def character_height(image):
    """uint8 image [H, W, C] -> its characters' height as a fraction of H (None without ink)."""
    pixels = image.astype(np.int32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    ink = np.abs(pixels - background).sum(axis=-1) * (3 / pixels.shape[-1]) > INK_DISTANCE
    columns = ink.any(axis=0)
    if not columns.any():
        return None
    rows = np.arange(ink.shape[0])[:, None]
    top = np.where(ink, rows, ink.shape[0]).min(axis=0)[columns]
    bottom = np.where(ink, rows, -1).max(axis=0)[columns]
    return float(np.percentile(bottom - top + 1, COLUMN_PERCENTILE)) / ink.shape[0]


def measure(spec, sample=SAMPLE):
    """The median character height of the first `sample` train images of `spec`, as a fraction of the frame's
    height (1.0 if none holds ink: nothing to scale by)."""
    batches = data.make_dataset(spec, "train", min(sample, spec.num_records("train")), training=False)
    images = next(iter(batches))[0].numpy()
    heights = [h for h in map(character_height, images) if h is not None]
    return float(np.median(heights)) if heights else 1.0
