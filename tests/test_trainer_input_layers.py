"""--crop, --ink and --jitter: trainer.models.input_layers in models.build, saved, resumed, fine-tuned, exported."""
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from trainer_fixtures import CHARSET, variable_dataset  # noqa: F401 (fixture)

from trainer import onnx_export, prepared, rundir, train
from trainer.errors import UserError
from trainer.models import build, build_parts, input_size, preparation
from trainer.models.input_layers import MIN_CONTRAST, Ink, Jitter, TextCrop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _glyph(ink_colour, paper_colour, strength=1.0, height=24, width=60):
    """float32 [1, H, W, 3]: a bar and a box on plain paper, the ink mixed toward the paper by 1 - strength."""
    paper, ink = np.array(paper_colour, np.float32), np.array(ink_colour, np.float32)
    image = np.tile(paper, (1, height, width, 1))
    mask = np.zeros((height, width), bool)
    mask[6:18, 10:13] = True
    mask[6:9, 30:45] = mask[15:18, 30:45] = mask[6:18, 30:33] = mask[6:18, 42:45] = True
    image[0, mask] = paper + strength * (ink - paper)
    return image, mask


def test_ink_reads_alike_whatever_the_colours_the_polarity_and_the_faintness():
    expected = _glyph((0, 0, 0), (1, 1, 1))[1].astype(np.float32)[None, :, :, None]
    for ink_colour, paper, strength in [((0, 0, 0), (1, 1, 1), 1.0), ((0.9, 0.2, 0.6), (1, 1, 1), 1.0),
                                        ((0.8, 0.9, 0.3), (1, 1, 1), 0.4), ((1, 1, 1), (0.1, 0.2, 0.1), 1.0)]:
        image, _ = _glyph(ink_colour, paper, strength)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(Ink()(image)), expected, atol=1e-6)


def test_ink_does_not_blow_up_an_image_without_characters():
    image = np.full((2, 16, 40, 3), 0.7, np.float32)
    image[1, 5, 5] = 0.7 - MIN_CONTRAST / 2  # one faint speck
    ink = keras.ops.convert_to_numpy(Ink()(image))
    assert ink.shape == (2, 16, 40, 1) and ink[0].max() == 0
    assert ink[1].max() == pytest.approx(0.5)  # scaled as if MIN_CONTRAST were its strongest ink, not to 1


def test_jitter_is_the_identity_at_inference_and_keeps_the_characters_inside_in_training():
    image, mask = _glyph((0.2, 0.1, 0.5), (0.9, 0.95, 1.0), width=60)
    image[0, :, 0] = image[0, :, -1] = (0.2, 0.1, 0.5)  # ink along the left and right edges: a label-bearing margin
    batch = np.repeat(image, 64, axis=0)
    jitter = Jitter(seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(jitter(batch, training=False)), batch)
    moved = keras.ops.convert_to_numpy(jitter(batch, training=True))
    assert moved.shape == batch.shape and moved.dtype == batch.dtype
    assert np.abs(moved - batch).max(axis=(1, 2, 3)).min() > 0.1  # every image moved
    ink = keras.ops.convert_to_numpy(Ink()(moved))[..., 0]
    # Shrinking and shifting within the margin keep both edge lines in the frame (rotation and shear move their
    # ends by a few pixels at most); the uncovered margin is paper, not ink.
    assert (ink[:, :, :15].max(axis=(1, 2)) > 0.5).all() and (ink[:, :, -15:].max(axis=(1, 2)) > 0.5).all()
    corners = np.concatenate([moved[:, :2, 20:40], moved[:, -2:, 20:40]], axis=1)
    np.testing.assert_allclose(corners, np.broadcast_to(np.float32((0.9, 0.95, 1.0)), corners.shape), atol=0.05)


def _small_text_page(top=30, left=150, rows=20, columns=150):
    """float32 [1, 80, 460, 3]: bars of dark ink `rows` high from (`top`, `left`) over `columns` columns of a pale
    blue page, struck through by a level line across the whole frame and a steep one across its whole height: small
    text in a wide frame."""
    image = np.tile(np.float32((0.9, 0.95, 1.0)), (1, 80, 460, 1))
    for x in range(left, left + columns, 12):
        image[0, top:top + rows, x:x + 4] = (0.3, 0.1, 0.2)
    image[0, top + rows // 2, :] = 0.2
    for y in range(80):
        image[0, y, left + columns // 3 + y // 4] = 0.2
    return image


def _ink_rows(images):
    """The rows of each image [B, H, W, C] with ink in more than 4 columns (not just the steep line): [B] counts."""
    return ((keras.ops.convert_to_numpy(Ink()(images))[..., 0] > 0.5).sum(axis=2) > 4).sum(axis=1)


def test_text_crop_scales_small_text_in_a_wide_frame_to_fill_the_input():
    image = np.concatenate([_small_text_page(), _small_text_page(top=8, left=20, rows=12, columns=60)])
    cropped = keras.ops.convert_to_numpy(TextCrop((32, 184))(image))
    resized = keras.ops.convert_to_numpy(keras.layers.Resizing(32, 184, antialias=True)(image))
    assert cropped.shape == (2, 32, 184, 3) and cropped.dtype == np.float32
    # Resized, the text keeps 8 and 5 of the input's 32 rows; cropped, it fills the input's height but for the margin
    # (a twentieth of the frame's height on each side, 4 rows at 80), and the box's least height for the smaller.
    assert list(_ink_rows(resized)) == [8, 5]
    assert list(_ink_rows(cropped) >= [19, 17]) == [True, True]
    # Centred, the margin the page's colour: no dark band from outside the frame.
    np.testing.assert_allclose(cropped[0, :3, :4].reshape(-1, 3), np.tile((0.9, 0.95, 1.0), (12, 1)), atol=0.02)


def test_text_crop_of_a_page_without_ink_is_the_page():
    page = np.full((2, 40, 200, 3), 0.8, np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(TextCrop((32, 160))(page)), 0.8, atol=1e-6)


def test_build_puts_ink_and_jitter_between_the_resize_and_the_architecture(tmp_path):
    model = build("ctc_small8", (40, 200, 3), len(CHARSET), [4, 5], input_height=32, ink=True, jitter=True)
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["image", "scale", "resize", "ink", "jitter"]
    assert model.layers[-1].input_shape == (None, 32, 160, 1)
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 200, 3), dtype=np.uint8)
    first = keras.ops.convert_to_numpy(model(images, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images, training=False)), first, atol=1e-6)
    assert loaded.get_layer("jitter").get_config()["shear"] == Jitter().shear


def test_build_crops_in_place_of_the_resize(tmp_path):
    model = build("ctc_small8", (80, 460, 3), len(CHARSET), [4, 5], input_height=32, ink=True, jitter=True, crop=True)
    assert [layer.name for layer in model.layers][:5] == ["image", "scale", "crop", "ink", "jitter"]
    assert model.layers[-1].input_shape == (None, 32, 184, 1)
    images = np.round(np.concatenate([_small_text_page(), _small_text_page(top=8)]) * 255).astype(np.uint8)
    first = keras.ops.convert_to_numpy(model(images, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images, training=False)), first, atol=1e-6)
    assert loaded.get_layer("crop").get_config()["size"] == [32, 184]


@pytest.mark.parametrize("crop", [False, True])
def test_an_ink_model_converts_to_onnx_without_its_jitter(crop):
    model = build("ctc_small8", (40, 200, 3), len(CHARSET), [4, 5], input_height=32, ink=True, jitter=True,
                  crop=crop)
    images = np.random.default_rng(1).integers(0, 256, (4, 40, 200, 3), dtype=np.uint8)
    images[:2] = np.round(np.concatenate([_small_text_page(top=8)[:, :40, :200]] * 2) * 255)  # a box to crop
    assert onnx_export.check(model, onnx_export.to_onnx(model), images) < 1e-5


@pytest.fixture(scope="module")
def ink_run(variable_dataset, tmp_path_factory):  # noqa: F811
    model_dir = str(tmp_path_factory.mktemp("ink_run"))
    train.train_and_evaluate(train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir=model_dir,
                                               batch_size=8, epochs=1, steps_per_epoch=2, seed=0, input_height=32,
                                               ink=True, jitter=True, crop=True))
    return model_dir


def test_an_ink_run_records_it_and_its_fine_tuning_inherits_it(ink_run, variable_dataset, tmp_path):  # noqa: F811
    with open(os.path.join(ink_run, "config.json")) as f:
        config = json.load(f)
    assert config["ink"] is True and config["jitter"] is True and config["crop"] is True
    model = rundir.load_model(ink_run)
    assert model.get_layer("ink") and model.get_layer("crop")
    tuned = train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir=str(tmp_path / "tuned"),
                              init_from=ink_run, batch_size=8, epochs=1, steps_per_epoch=1)
    assert train.finetune.inherit(tuned).ink is True and train.finetune.inherit(tuned).crop is True
    assert train.finetune.inherit(dataclasses.replace(tuned, crop=False)).crop is False  # given: kept


def test_ink_or_noink_against_the_init_run_is_refused(ink_run, variable_dataset, tmp_path):  # noqa: F811
    colours = str(tmp_path / "colours")
    train.train_and_evaluate(train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir=colours,
                                               batch_size=8, epochs=1, steps_per_epoch=1, seed=0, input_height=32))
    for init, ink, match in ((colours, True, "--ink: the model in .* reads the images' colours; fine-tune it without"),
                             (ink_run, False, "--noink: the model in .* reads ink; fine-tune it without the flag")):
        tuned = train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir=str(tmp_path / "tuned"),
                                  init_from=init, ink=ink)
        with pytest.raises(UserError, match=match):
            train.finetune.inherit(tuned)
    assert train.finetune.inherit(dataclasses.replace(tuned, ink=None)).ink is True


def test_crop_ink_and_jitter_run_on_jax():
    script = """
import numpy as np, keras
from trainer.models import build, build_parts, input_size, preparation
model = build("ctc_small8", (40, 200, 3), 36, [4, 5], input_height=32, ink=True, jitter=True, crop=True)
images = np.random.default_rng(0).integers(0, 256, (2, 40, 200, 3), dtype=np.uint8)
trained, served = model(images, training=True), model(images, training=False)
print(keras.backend.backend(), *("x".join(map(str, out.shape)) for out in (trained, served)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["jax", "2x20x37", "2x20x37"]


def test_the_trainable_twin_reads_prepared_images_as_the_reader_reads_stored_ones():
    reader, twin = build_parts("ctc_small8", (80, 460, 3), len(CHARSET), [4, 5], input_height=32, ink=True,
                               jitter=True, crop=True)
    assert {id(w) for w in twin.weights} == {id(w) for w in reader.weights}  # one set of weights
    assert twin.input_shape == (None, 32, 184, 1) and twin.get_layer("jitter") is reader.get_layer("jitter")
    images = np.round(np.concatenate([_small_text_page(), _small_text_page(top=8)]) * 255).astype(np.uint8)
    prepared_images = keras.ops.convert_to_numpy(preparation((80, 460, 3), 32, ink=True, crop=True)(images))
    assert prepared_images.dtype == np.uint8 and prepared_images.shape == (2, 32, 184, 1)
    assert prepared_images.max() == 255  # the ink, scaled to its strongest, survives the rounding
    np.testing.assert_allclose(keras.ops.convert_to_numpy(twin(prepared_images, training=False)),
                               keras.ops.convert_to_numpy(reader(images, training=False)), atol=2e-3)


def test_images_are_prepared_once_only_for_a_cached_crop_without_tf_data_augmentation():
    config = train.TrainConfig(model="ctc_small", data_dir="d", model_dir="m", crop=True, cache=True)
    assert prepared.applies(config)
    for change in ({"crop": False}, {"cache": False}, {"augment": True}, {"colour_augment": True}):
        assert not prepared.applies(dataclasses.replace(config, **change))


def test_a_cached_cropping_run_trains_on_prepared_images_within_its_budget(variable_dataset, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    monkeypatch.setattr(prepared, "_kept", {})  # none kept by an earlier test in this process
    config = train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir=str(tmp_path / "run"),
                               batch_size=8, epochs=1, steps_per_epoch=2, seed=0, input_height=32, ink=True,
                               jitter=True, crop=True, cache=True, time_budget=600)
    spec = train.DatasetSpec.load(variable_dataset)
    budgeted, (train_batches, _) = train.training_inputs(config, spec)
    assert 0 < budgeted.time_budget < 600  # the preparation's seconds were taken from the budget
    assert prepared.arrays(spec, "val", 32, True)[0].shape[0] == spec.num_records("val")
    images, labels = next(iter(train_batches))
    assert images.shape == (8, *input_size(spec.image_shape, 32), 1) and images.dtype == "uint8"
    assert labels.shape[0] == 8
    kept = prepared.arrays(spec, "train", 32, True)
    assert prepared.arrays(spec, "train", 32, True) is kept  # made once: the race's readers share them
    train.train_and_evaluate(config)
    reader = rundir.load_model(config.model_dir)  # best.keras: the reader of stored images, crop and ink inside
    assert reader.input_shape == (None, *spec.image_shape) and reader.get_layer("crop") and reader.get_layer("ink")
