"""trainer.preprocess: serving resizes images as the pipeline's images source (pipeline.ingest.to_png) did."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pipeline import ingest
from trainer import preprocess

SHAPE = (64, 128, 3)
PAD = {"resize": "pad", "filter": "bilinear", "antialias": True, "pad_colour": "border_median", "alpha": "white"}
STRETCH = dict(PAD, resize="stretch", pad_colour=None)


def _captcha_like(height, width, seed):
    """Smooth background, dark strokes with sharp edges and some noise: what resizing meets in captchas."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([200 + 40 * np.sin(x / 7.0), 180 + 50 * np.cos(y / 5.0), 150 + 60 * np.sin((x + y) / 11.0)], -1)
    for _ in range(12):
        top, left = rng.integers(0, height - 4), rng.integers(0, width - 4)
        image[top:top + rng.integers(2, 20), left:left + rng.integers(2, 12)] = rng.integers(0, 90, 3)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encoded(pixels, fmt):
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def _rgba_300x47():
    """RGBA PNG: transparent on its left 80 columns (hiding a non-white colour), half transparent on 40 more."""
    pixels = np.concatenate([_captcha_like(47, 300, 0), np.full((47, 300, 1), 255, np.uint8)], -1)
    pixels[:, :80, 3] = 0
    pixels[:, 80:120, 3] = 128
    return _encoded(pixels, "PNG")


def _jpeg_60x90():
    return _encoded(_captcha_like(90, 60, 1), "JPEG")


def _pipeline_pixels(encoded, resize):
    return np.asarray(Image.open(io.BytesIO(ingest.to_png(encoded, SHAPE[1], SHAPE[0], resize))))


# Pillow resamples in two passes through an 8-bit image with fixed-point weights and composites alpha in integers;
# TensorFlow stays in float until it rounds once. Measured on these four cases: at most 1 level (of 255) apart, on
# 3-17% of the values (mean 0.03-0.17 levels). The export before trainer.preprocess was 1.8-47 levels off on
# average, up to 255.
@pytest.mark.parametrize("preprocessing", [PAD, STRETCH], ids=["pad", "stretch"])
@pytest.mark.parametrize("make", [_rgba_300x47, _jpeg_60x90], ids=["rgba_png_300x47", "jpeg_60x90"])
def test_serving_resize_matches_the_pipelines(make, preprocessing):
    encoded = make()
    expected = _pipeline_pixels(encoded, preprocessing["resize"]).astype(int)
    got = preprocess.decode_image(encoded, SHAPE, preprocessing).numpy().astype(int)
    assert got.shape == expected.shape
    difference = np.abs(got - expected)
    assert difference.mean() < 0.25 and difference.max() <= 1, (difference.mean(), difference.max())


def test_graph_equals_eager():
    """big_vision habit: the same op eagerly and in a graph (map_fn in a tf.function, as the SavedModel runs it)."""
    images = tf.constant([_rgba_300x47(), _jpeg_60x90()])
    graph = tf.function(lambda b: tf.map_fn(lambda e: preprocess.decode_image(e, SHAPE, PAD), b,
                                            fn_output_signature=tf.TensorSpec(SHAPE, tf.uint8)))(images)
    for encoded, image in zip(images, graph):
        np.testing.assert_array_equal(image.numpy(), preprocess.decode_image(encoded, SHAPE, PAD).numpy())


@pytest.mark.parametrize("preprocessing", [PAD, STRETCH, None], ids=["pad", "stretch", "before preprocessing"])
def test_images_of_the_models_size_pass_unchanged(preprocessing):
    pixels = _captcha_like(*SHAPE[:2], seed=2)
    got = preprocess.decode_image(_encoded(pixels, "PNG"), SHAPE, preprocessing).numpy()
    np.testing.assert_array_equal(got, pixels)


def test_specs_without_preprocessing_resize_as_exports_always_did():
    """Stretch without antialiasing, alpha dropped: runs trained before spec.json recorded preprocessing serve as
    they did."""
    encoded = _rgba_300x47()
    old = tf.image.resize(tf.io.decode_png(encoded, channels=3), SHAPE[:2], method="bilinear")
    old = tf.saturate_cast(tf.round(old), tf.uint8)
    np.testing.assert_array_equal(preprocess.decode_image(encoded, SHAPE, None).numpy(), old.numpy())
