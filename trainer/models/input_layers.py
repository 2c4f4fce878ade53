"""Layers between the stored image and an architecture: `TextCrop` (what `--crop` adds in place of the plain resize:
the text's box cut out and scaled to the input size), `Ink` (what `--ink` adds: one channel of ink, whatever the
colours) and `Jitter` (what `--jitter` adds: a random affine map per training image, nothing at inference).

    python -m trainer.main --model=ctc_stride8 --crop --ink --jitter --input_height=32 --data_dir=data/real \
        --model_dir=runs/crop

All three are plain Keras ops inside the model, so they run on every backend and travel in best.keras, the SavedModel
and the ONNX reader. The ink and jitter cost little: they act on the input the architecture sees (e.g. 48x272); the
crop acts on the stored image.
On generic_upper (coloured characters of many fonts, small in a wide frame) each made the reader learn more per step
and read more in the same minutes; where the text already fills the frame the crop only costs steps, so
`--model=auto` crops only where the characters are small in their frame (trainer.recipe, docs/experiments.md).
"""
import math

import keras
from keras import layers, ops

MIN_CONTRAST = 0.1  # an image whose strongest ink is fainter than this is scaled as if it were this strong
# TextCrop's box (the rule of docs/experiments.md's cropped frame): pixels with at least INK_LEVEL of the image's
# strongest ink are marks; the text's rows hold at least ROW_SHARE of the marks of the row at ROW_QUANTILE of the
# frame's rows (not the busiest: a level strike line would be it); its columns are where a running sum of COLUMN_RUN
# columns of those rows' marks reaches COLUMN_SHARE of its peak. Either must also hold more marks than a strike line
# LINE_WIDTH pixels thick that crosses it, so lines alone never widen the box.
INK_LEVEL, ROW_SHARE, ROW_QUANTILE, COLUMN_SHARE, COLUMN_RUN, LINE_WIDTH = 0.15, 0.2, 0.9, 0.15, 9, 2
MARGIN = 0.05  # of the frame's height, kept around the box
MIN_BOX_HEIGHT = 0.25  # of the frame's height: a speck of ink is not blown up to fill the input


def background(images):
    """[B, 1, 1, C]: per image and channel, the upper median of the border pixels (top and bottom rows, left and right
    columns), as trainer.preprocess._border_median takes the pad colour (that one is TensorFlow and per image; this
    one is Keras ops on a batch, for every backend)."""
    border = ops.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    return ops.sort(border, axis=1)[:, border.shape[1] // 2][:, None, None, :]


def ink_and_strongest(images, behind):
    """(ink [B, H, W, 1], strongest [B, 1, 1, 1]): each pixel's largest channel distance from `behind` (background()'s
    colour), and each image's largest such distance."""
    ink = ops.max(ops.abs(images - behind), axis=-1, keepdims=True)
    return ink, ops.max(ink, axis=(1, 2, 3), keepdims=True)


def first_and_last(mask):
    """[B, N] booleans -> ([B], [B]) float32: the index of each row's first and last True (0 and N - 1 if none)."""
    count = mask.shape[1]
    first = ops.argmax(ops.cast(mask, "int32"), axis=1)
    last = count - 1 - ops.argmax(ops.cast(ops.flip(mask, axis=1), "int32"), axis=1)
    return ops.cast(first, "float32"), ops.cast(last, "float32")


def text_box(images, behind):
    """Images [B, H, W, C] in [0, 1] and their background colours `behind` (background()) -> (top, bottom, left, right),
    each [B] float32 pixel indices: the box of the text by the rule of INK_LEVEL and the constants after it, without
    margin. An image without ink gives the whole frame."""
    ink, strongest = ink_and_strongest(images, behind)
    marks = ops.cast(ink >= INK_LEVEL * ops.maximum(strongest, MIN_CONTRAST), "float32")[..., 0]
    rows = ops.sum(marks, axis=2)
    busy = ops.sort(rows, axis=1)[:, int(ROW_QUANTILE * (rows.shape[1] - 1))]
    text_rows = rows >= ops.maximum(ROW_SHARE * busy[:, None], LINE_WIDTH + 1)
    top, bottom = first_and_last(text_rows)
    columns = ops.sum(marks * ops.cast(text_rows, "float32")[:, :, None], axis=1)
    running = ops.cumsum(ops.pad(columns, ((0, 0), (COLUMN_RUN // 2 + 1, COLUMN_RUN // 2))), axis=1)
    runs = running[:, COLUMN_RUN:] - running[:, :-COLUMN_RUN]  # [B, W]: the sum over COLUMN_RUN columns about each
    peak = ops.max(runs, axis=1, keepdims=True)
    left, right = first_and_last(runs >= ops.maximum(COLUMN_SHARE * peak, LINE_WIDTH * COLUMN_RUN + 1))
    return top, bottom, left, right


def tent_weights(centres, step, size):
    """[B, n] source coordinates (pixel centres at 0, 1, ...) sampled every `step` [B] pixels -> [B, n, size]
    interpolation weights: linear, widened to the step where it exceeds a pixel (the antialiased resize's triangle
    filter), each row summing to 1 over the frame; 0 where the row falls wholly outside it (the background)."""
    radius = ops.maximum(step, 1.0)[:, None, None]
    source = ops.arange(size, dtype="float32")[None, None, :]
    weights = ops.maximum(0.0, 1.0 - ops.abs(source - centres[:, :, None]) / radius)
    return weights / ops.maximum(ops.sum(weights, axis=2, keepdims=True), 1e-6)


@keras.saving.register_keras_serializable(package="trainer")
class TextCrop(layers.Layer):
    """Images [B, H, W, C] in [0, 1] -> [B, *`size`, C]: each image's text box (text_box, with MARGIN around it, at
    least MIN_BOX_HEIGHT of the frame high) scaled, its aspect ratio kept, until it fills `size` along one axis,
    centred, with what surrounds it in the frame along the other (the image's background beyond the frame's edges): an
    antialiased bilinear resize of the box. Characters small in a wide frame reach the input as large as it allows,
    whatever their size in the frame. Two matrix products per image (rows, then columns), so every backend and ONNX
    run it; the same at training and inference."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, images):
        images = ops.cast(images, "float32")
        frame_height, frame_width = images.shape[1], images.shape[2]
        behind = background(images)
        top, bottom, left, right = text_box(images, behind)
        margin = MARGIN * frame_height
        box_height = ops.maximum(bottom - top + 1 + 2 * margin, MIN_BOX_HEIGHT * frame_height)
        box_width = right - left + 1 + 2 * margin
        height, width = self.size
        step = ops.maximum(box_height / height, box_width / width)  # source pixels per input pixel, both axes
        centre_y, centre_x = (top + bottom) / 2, (left + right) / 2

        def centres(centre, count):  # [B, count]: the source coordinate of each output pixel's centre
            offsets = ops.arange(count, dtype="float32")[None, :] + 0.5 - count / 2
            return centre[:, None] + offsets * step[:, None]

        rows = tent_weights(centres(centre_y, height), step, frame_height)
        columns = tent_weights(centres(centre_x, width), step, frame_width)
        cropped = ops.einsum("bih,bhwc->biwc", rows, images - behind)
        cropped = ops.einsum("biwc,bjw->bijc", cropped, columns)
        return ops.cast(cropped + behind, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


@keras.saving.register_keras_serializable(package="trainer")
class Ink(layers.Layer):
    """Images [B, H, W, C] in [0, 1] -> ink [B, H, W, 1] in [0, 1]: each pixel's largest channel distance from the
    image's background (the per-channel median of its border pixels, as trainer.ink and the pad colour take it),
    divided by the image's strongest ink (at least MIN_CONTRAST). Dark ink on light, light on dark, any hue and any
    faintness come out alike: what the characters' colours vary in is gone before the first conv."""

    def call(self, images):
        ink, strongest = ink_and_strongest(images, background(images))
        return ink / ops.maximum(strongest, MIN_CONTRAST)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


@keras.saving.register_keras_serializable(package="trainer")
class Jitter(layers.Layer):
    """Training only: each image [B, H, W, C] drawn again through its own random affine map about its centre: a
    rotation of up to `rotation` radians, a horizontal shear of up to `shear` (x += shear * y, as italics), each axis
    shrunk by a factor in [1 - `zoom_out`, 1], and a shift within the margin the shrinking leaves; uncovered pixels
    take the image's background. It never enlarges, so the characters stay in the frame and the labels stay true.
    The identity at inference. (Keras' RandomShear does not load back from its config in Keras 3.15, and four
    Random* layers would resample the image four times.)"""

    def __init__(self, rotation=math.radians(3.5), shear=0.25, zoom_out=0.15, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.shear, self.zoom_out, self.seed = rotation, shear, zoom_out, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        batch = ops.shape(images)[0]
        height, width = float(images.shape[1]), float(images.shape[2])

        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        angle, shear = uniform(-self.rotation, self.rotation), uniform(-self.shear, self.shear)
        scale_x, scale_y = uniform(1 - self.zoom_out, 1.0), uniform(1 - self.zoom_out, 1.0)
        shift_x = uniform(-0.5, 0.5) * (1 - scale_x) * width
        shift_y = uniform(-0.5, 0.5) * (1 - scale_y) * height
        # Each row maps an output pixel to the input pixel it reads: rotation . shear . 1 / scale, about the centre.
        cos, sin = ops.cos(angle), ops.sin(angle)
        a0, a1 = cos / scale_x, (cos * shear - sin) / scale_y
        b0, b1 = sin / scale_x, (sin * shear + cos) / scale_y
        cx, cy = (width - 1) / 2, (height - 1) / 2
        zeros = ops.zeros_like(a0)
        transforms = ops.stack([a0, a1, cx - a0 * cx - a1 * cy - shift_x,
                                b0, b1, cy - b0 * cx - b1 * cy - shift_y, zeros, zeros], axis=1)
        images = ops.cast(images, "float32")
        behind = background(images)
        moved = ops.image.affine_transform(images - behind, transforms, fill_mode="constant", fill_value=0.0)
        return ops.cast(moved + behind, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shear": self.shear, "zoom_out": self.zoom_out,
                "seed": self.seed}
