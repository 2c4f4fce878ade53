"""Random on-the-fly augmentation of training batches, for small (real) datasets: trainer.main --augment (geometry,
brightness, contrast, noise) and --colour_augment (colour only).

    python -m trainer.main --model=ctc --data_dir=data/real --model_dir=runs/real --init_from=runs/ctc --augment
    python -m trainer.main --model=auto --data_dir=data/real --model_dir=runs/real --colour_augment

Each image gets its own small affine jitter (rotation, shear, a zoom out, translation about the centre, edges filled
with the nearest pixel), brightness and contrast jitter and Gaussian noise; the result is clipped to [0, 1].
Labels are untouched, so the jitter never enlarges the image and moves it little: every character stays inside
(real captchas' text often fills the frame; zooming out only read more of a real set early: docs/real-captchas.md).
"""
import math

import tensorflow as tf

MAX_ROTATION = math.radians(4)
MAX_ZOOM_OUT = 0.16  # zoom factor in [1 - MAX_ZOOM_OUT, 1]
MAX_SHEAR = 0.15  # horizontal shear, x += shear * y
MAX_SHIFT = 0.02  # translation, as a fraction of height and of width
MAX_BRIGHTNESS = 0.1  # added to every pixel
MAX_CONTRAST = 0.2  # distance to the image mean scaled by a factor in [1 - MAX_CONTRAST, 1 + MAX_CONTRAST]
MAX_NOISE_STDDEV = 0.03  # per image, uniform in [0, MAX_NOISE_STDDEV]
# colour(): each acts on ink = 1 - pixel, so a white background stays white.
_CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
MAX_CHANNEL_GAIN = 0.3  # each channel's ink scaled by a factor in [1 - MAX_CHANNEL_GAIN, 1 + MAX_CHANNEL_GAIN]
MAX_DESATURATION = 0.7  # ink mixed toward its grey (the channels' mean) by a fraction in [0, MAX_DESATURATION]
INK_GAMMA = (0.7, 1.6)  # ink ** gamma, log-uniform: above 1 pale strokes get paler, black stays black
MAX_FADE = 0.25  # all ink scaled by a factor in [1 - MAX_FADE, 1], toward white


def augment(images):
    """Float images [B, H, W, C] in [0, 1] -> the same shape and dtype in [0, 1], each randomly jittered."""
    # tf.raw_ops, not keras.ops: this runs inside tf.data, which must stay TensorFlow under every Keras backend
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.cast(_random_transforms(tf.shape(images)), tf.float32),
        output_shape=tf.shape(images)[1:3], fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")
    batch = tf.shape(images)[0]

    def per_image(low, high):
        return tf.random.uniform([batch, 1, 1, 1], low, high)

    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * per_image(1 - MAX_CONTRAST, 1 + MAX_CONTRAST) + mean
    images += per_image(-MAX_BRIGHTNESS, MAX_BRIGHTNESS)
    images += tf.random.normal(tf.shape(images)) * per_image(0, MAX_NOISE_STDDEV)
    return tf.clip_by_value(images, 0.0, 1.0)


def colour(images):
    """Float RGB images [B, H, W, 3] in [0, 1] -> the same with random colour only, no geometry: a channel permutation
    (another hue), a gain per channel, partial desaturation, a gamma on the ink and a fade toward white, each drawn
    per image. For coloured characters on a light background: pale strokes turn up in other colours and paler.
    Measured on real sets in docs/real-captchas.md."""
    batch = tf.shape(images)[0]

    def per_image(low, high, channels=1):
        return tf.random.uniform([batch, 1, 1, channels], low, high)

    order = tf.gather(tf.constant(_CHANNEL_ORDERS), tf.random.uniform([batch], 0, len(_CHANNEL_ORDERS), tf.int32))
    ink = tf.gather(1.0 - images, order, axis=3, batch_dims=1)
    ink *= per_image(1 - MAX_CHANNEL_GAIN, 1 + MAX_CHANNEL_GAIN, 3)
    ink += (tf.reduce_mean(ink, axis=3, keepdims=True) - ink) * per_image(0, MAX_DESATURATION)
    gamma = tf.exp(per_image(math.log(INK_GAMMA[0]), math.log(INK_GAMMA[1])))
    ink = tf.pow(tf.clip_by_value(ink, 0.0, 1.0) + 1e-6, gamma) * per_image(1 - MAX_FADE, 1.0)
    return tf.clip_by_value(1.0 - ink, 0.0, 1.0)


def _random_transforms(shape):
    """[B, 8] random transforms within the limits above for images of `shape` [B, H, W, C]."""
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(limit):
        return tf.random.uniform([batch], -limit, limit)

    zoom = 1 - tf.random.uniform([batch], 0, MAX_ZOOM_OUT)
    return affine_transforms(uniform(MAX_ROTATION), uniform(MAX_SHEAR), zoom,
                             uniform(MAX_SHIFT) * width, uniform(MAX_SHIFT) * height, height, width)


def affine_transforms(angle, shear, scale, shift_x, shift_y, height, width):
    """[B, 8] projective transforms (ImageProjectiveTransformV3) from [B] parameters (radians, pixels).

    The output image is the input rotated, sheared and zoomed (scale > 1 enlarges) about the image centre, then
    moved right by shift_x and down by shift_y. Each row maps an output pixel to the input pixel it is read from:
    input = A (output - centre) + centre - shift, with A = rotation(angle) . [[1, shear], [0, 1]] / scale.
    """
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1 = cos, cos * shear - sin
    b0, b1 = sin, sin * shear + cos
    cx, cy = (tf.cast(width, tf.float32) - 1) / 2, (tf.cast(height, tf.float32) - 1) / 2
    a2 = cx - a0 * cx - a1 * cy - shift_x
    b2 = cy - b0 * cx - b1 * cy - shift_y
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
