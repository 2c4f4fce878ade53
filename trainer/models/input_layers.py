"""Layers between the resized image and an architecture: `Ink` (what `--ink` adds: one channel of ink, whatever the
colours) and `Jitter` (what `--jitter` adds: a random affine map per training image, nothing at inference).

    python -m trainer.main --model=ctc_stride8 --ink --jitter --input_height=48 --data_dir=data/real \
        --model_dir=runs/ink

Both are plain Keras ops inside the model, so they run on every backend, travel in best.keras, the SavedModel and the
ONNX reader, and cost little: they act on the input the architecture sees (e.g. 48x272), not on the stored image.
On generic_upper (coloured characters of many fonts) they made the reader learn per step far faster and read more
in the same minutes (docs/experiments.md).
"""
import math

import keras
from keras import layers, ops

MIN_CONTRAST = 0.1  # an image whose strongest ink is fainter than this is scaled as if it were this strong


def background(images):
    """[B, 1, 1, C]: per image and channel, the upper median of the border pixels (top and bottom rows, left and right
    columns), as trainer.preprocess._border_median takes the pad colour (that one is TensorFlow and per image; this
    one is Keras ops on a batch, for every backend)."""
    border = ops.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    return ops.sort(border, axis=1)[:, border.shape[1] // 2][:, None, None, :]


@keras.saving.register_keras_serializable(package="trainer")
class Ink(layers.Layer):
    """Images [B, H, W, C] in [0, 1] -> ink [B, H, W, 1] in [0, 1]: each pixel's largest channel distance from the
    image's background (the per-channel median of its border pixels, as trainer.ink and the pad colour take it),
    divided by the image's strongest ink (at least MIN_CONTRAST). Dark ink on light, light on dark, any hue and any
    faintness come out alike: what the characters' colours vary in is gone before the first conv."""

    def call(self, images):
        ink = ops.max(ops.abs(images - background(images)), axis=-1, keepdims=True)
        strongest = ops.max(ink, axis=(1, 2, 3), keepdims=True)
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
