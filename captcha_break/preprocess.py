"""Any image in, the reader's input out (uint8 [height, width, channels]), made exactly as the pipeline's images
source made the training images (pipeline/ingest.py `to_png`, with the same Pillow calls), as reader.json's
`preprocessing` (spec.json's) records it:

    {"resize": "pad" | "stretch", "filter": "bilinear", "antialias": true, "pad_colour": "border_median" | null,
     "alpha": "white"}

1. alpha: transparency (an alpha channel, a palette's or a tRNS colour) is composited on white;
2. stretch: Pillow's BILINEAR resize to the input size (it antialiases when downscaling); pad: ImageOps.pad on the
   per-channel median of the image's border pixels.
Images of the input size are not resampled. For models whose spec.json predates `preprocessing` (None), the
SavedModel's old resize: alpha dropped, bilinear without antialiasing (tf.image.resize's half-pixel centres).

The SavedModel does the same in TensorFlow ops within 1 grey level (trainer/preprocess.py); this is the reference
itself, so the reader sees the pixels the model was trained on.
"""
import io
import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from captcha_break.errors import ImageError, TooLargeError

ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")  # as pipeline/ingest.py: P's palette may hold transparency
GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # tf.image.rgb_to_grayscale's, for 1-channel models


def read_file(path, max_bytes=None):
    """The bytes of the regular file `path`; ImageError if it is not one (a folder, a FIFO: open would wait for a
    writer forever), cannot be read, or is over max_bytes."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(f"cannot read {path}: not a regular file")
        if max_bytes is not None and os.stat(path).st_size > max_bytes:
            raise TooLargeError(f"cannot read {path}: {os.stat(path).st_size} bytes, over the limit of {max_bytes}")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror}") from None


def open_image(data, max_pixels=None):
    """A loaded Pillow image of the encoded `data`; ImageError if it is not an image Pillow reads or has over
    max_pixels pixels (default Pillow's limit, as ingest), found from the header before any pixel is decoded."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if limit and width * height > limit:
                raise TooLargeError(f"the image is {width}x{height}: {width * height} pixels, over the limit of "
                                    f"{limit}")
            image.load()
            return image
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: refused before the size is known
        pixels = re.search(r"[0-9]+", str(e)).group()
        raise TooLargeError(f"the image has {pixels} pixels, over the limit of {limit}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt files, which Pillow finds while decoding
        raise ImageError(f"cannot decode the image: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _on_white(image):
    """pipeline/ingest.py to_png's step 1: transparency composited on white, then RGB."""
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _border_median(image):
    """Per channel, the value at index n // 2 of the sorted n pixels of the top and bottom rows and the left and
    right columns (corners counted twice), as to_png."""
    pixels = np.asarray(image)
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]], axis=0)
    return tuple(int(v) for v in np.sort(edge, axis=0)[len(edge) // 2])


def _tf_bilinear(pixels, height, width):
    """tf.image.resize(..., "bilinear", antialias=False) of uint8 [h, w, c], rounded: the resize of SavedModels
    whose spec.json has no `preprocessing`."""
    def weights(size_in, size_out):
        position = (np.arange(size_out, dtype=np.float32) + 0.5) * np.float32(size_in / size_out) - 0.5
        floor = np.floor(position)
        lower = np.maximum(floor, 0).astype(int)
        upper = np.minimum(np.ceil(position), size_in - 1).astype(int)
        return lower, upper, (position - floor).astype(np.float32)
    image = pixels.astype(np.float32)
    if image.shape[:2] == (height, width):
        return pixels
    top, bottom, dy = weights(image.shape[0], height)
    left, right, dx = weights(image.shape[1], width)
    rows_top, rows_bottom = image[top], image[bottom]
    a = rows_top[:, left] + (rows_top[:, right] - rows_top[:, left]) * dx[None, :, None]
    b = rows_bottom[:, left] + (rows_bottom[:, right] - rows_bottom[:, left]) * dx[None, :, None]
    return np.clip(np.round(a + (b - a) * dy[:, None, None]), 0, 255).astype(np.uint8)


def to_pixels(image, height, width, channels, preprocessing):
    """A Pillow image -> uint8 [height, width, channels], following `preprocessing` (module docstring)."""
    if preprocessing is None:
        pixels = np.asarray(image.convert("RGB"))
        pixels = _tf_bilinear(pixels, height, width)
    else:
        image = _on_white(image)
        if preprocessing["resize"] == "stretch":
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        else:
            colour = _border_median(image)
            image = ImageOps.pad(image, (width, height), Image.Resampling.BILINEAR, color=colour)
        pixels = np.asarray(image)
    if channels == 1:
        grey = np.round(pixels.astype(np.float32) @ GREY_WEIGHTS)
        return np.clip(grey, 0, 255).astype(np.uint8)[..., None]
    return pixels


def decode(data, height, width, channels, preprocessing, max_pixels=None):
    """Encoded image bytes -> uint8 [height, width, channels] (ImageError if they are not a readable image)."""
    with open_image(data, max_pixels) as image:
        return to_pixels(image, height, width, channels, preprocessing)
