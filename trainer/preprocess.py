"""Serving-time image preprocessing in TensorFlow ops: any image in, the model's input size out, made the way the
pipeline's images source made the training images (pipeline/ingest.py `to_png`, with Pillow), as spec.json's
`preprocessing` records it:

    {"resize": "pad" | "stretch", "filter": "bilinear", "antialias": true, "pad_colour": "border_median" | null,
     "alpha": "white"}

Alpha is composited on white; `pad` keeps the aspect ratio (the size and offsets of Pillow's ImageOps.pad) and fills
the rest with the per-channel median of the image's border pixels; `stretch` resizes to the model's size. Specs
written before the field existed get the export's old resize: stretch without antialiasing, alpha dropped.
Pixels end at most 1 level from Pillow's (tests/test_trainer_preprocess.py), except where TensorFlow's decoders
drop transparency Pillow sees: a GIF's transparent colour and the tRNS colour of a PNG without a palette.
"""
import tensorflow as tf


def decode_image(encoded, image_shape, preprocessing=None):
    """Encoded PNG/JPEG/GIF/BMP bytes of any size -> uint8 `image_shape` [height, width, channels], following
    `preprocessing` (a spec's, or None for specs without one). Images of the model's size are not resampled."""
    if preprocessing is None:
        image = tf.io.decode_image(encoded, channels=image_shape[2], expand_animations=False)
        image = _resize(tf.cast(image, tf.float32), image_shape[:2], antialias=False)
    else:
        image = _on_white(_decode(encoded))
        if preprocessing["resize"] == "pad":
            image = _pad(image, image_shape[:2], preprocessing["antialias"])
        else:
            image = _resize(image, image_shape[:2], preprocessing["antialias"])
        if image_shape[2] == 1:
            image = tf.image.rgb_to_grayscale(image)
    return tf.ensure_shape(tf.saturate_cast(tf.round(image), tf.uint8), image_shape)


def _decode(encoded):
    """uint8 [h, w, 1-4] in the file's own channels; JPEGs with libjpeg's accurate integer DCT, as Pillow decodes
    them (TensorFlow's default, the fast one, is off by up to 4 levels)."""
    return tf.cond(tf.io.is_jpeg(encoded),
                   lambda: tf.io.decode_jpeg(encoded, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.io.decode_image(encoded, expand_animations=False))


def _on_white(image):
    """uint8 [h, w, 1-4] -> float32 RGB with whole values 0-255, transparent pixels composited on white (as Pillow's
    convert("RGBA") and alpha_composite onto white, then convert("RGB"))."""
    channels = tf.shape(image)[-1]
    image = tf.cast(image, tf.float32)
    colour = tf.cond(channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    alpha = tf.cond(channels % 2 == 0, lambda: image[..., -1:] / 255.0, lambda: tf.ones_like(image[..., :1]))
    return tf.round(colour * alpha + 255.0 * (1.0 - alpha))


def _resize(image, size, antialias):
    """Bilinear resize of float32 [h, w, c] to `size`; an image of that size is returned as it is."""
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.cond(same, lambda: image,
                   lambda: tf.round(tf.image.resize(image, size, method="bilinear", antialias=antialias)))


def _pad(image, size, antialias):
    """Pillow's ImageOps.pad of float32 RGB [h, w, 3] to `size`, centred, on the border's median colour."""
    height, width = size
    h, w = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float64))
    # ImageOps.contain: the side that does not fit is round(side / other side * target), Python's round (half to
    # even, as tf.round) on float64.
    new_height = tf.where(w / h > width / height, tf.round(h / w * width), tf.constant(height, tf.float64))
    new_width = tf.where(w / h < width / height, tf.round(w / h * height), tf.constant(width, tf.float64))
    new_height, new_width = tf.cast(new_height, tf.int32), tf.cast(new_width, tf.int32)
    resized = _resize(image, tf.stack([new_height, new_width]), antialias)
    top = tf.cast(tf.round(tf.cast(height - new_height, tf.float64) * 0.5), tf.int32)
    left = tf.cast(tf.round(tf.cast(width - new_width, tf.float64) * 0.5), tf.int32)
    colour = _border_median(image)
    padding = [[top, height - new_height - top], [left, width - new_width - left], [0, 0]]
    return tf.pad(resized - colour, padding) + colour


def _border_median(image):
    """Per channel, the upper median of the top and bottom rows and the left and right columns (corners twice)."""
    border = tf.concat([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
    return tf.sort(border, axis=0)[tf.shape(border)[0] // 2]
