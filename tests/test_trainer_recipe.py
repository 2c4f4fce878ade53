"""--model=auto (trainer.recipe) and the input resizing of trainer.models.build."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import CHARSET, _render, fixed_dataset, variable_dataset  # noqa: F401 (fixture)

from trainer import data, ink, recipe, train
from trainer.errors import UserError
from trainer.models import MODELS, build, input_size
from trainer.spec import TRAINER_FEATURES, DatasetSpec, Split


def _spec(height, width, train_records, lengths=(4,)):
    return DatasetSpec(folder="data/x", identity="0123456789ab", charset=CHARSET, label_lengths=lengths,
                       image_shape=(height, width, 3),
                       splits={"train": Split(train_records, ()), "val": Split(train_records // 10, ())},
                       preprocessing=None, features=TRAINER_FEATURES, num_files=None)


@pytest.mark.parametrize("shape, height, expected", [
    ((50, 200, 3), 32, (32, 128)), ((30, 70, 3), 32, (32, 72)), ((80, 450, 3), 32, (32, 176)),
    ((64, 128, 3), None, (64, 128)), ((64, 128, 3), 64, (64, 128)), ((16, 2, 3), 32, (32, 8))])
def test_input_size_keeps_the_aspect_ratio_in_multiples_of_8(shape, height, expected):
    assert input_size(shape, height) == expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_with_an_input_height_resizes_inside_the_model(name):
    model = build(name, (50, 200, 3), len(CHARSET), [4], input_height=32)
    assert model.input_shape == (None, 50, 200, 3)
    assert model.get_layer("resize").get_config()["height"] == 32
    probs = model(np.random.default_rng(0).random((2, 50, 200, 3), np.float32), training=False)
    assert probs.shape[0] == 2 and probs.shape[-1] == len(CHARSET) + (name not in ("cnn", "attn_small", "attn_base"))


@pytest.mark.parametrize("name, wide_lengths", [("ctc_fullres", [4, 8]), ("attn_small", [4])])
def test_sequence_readers_weights_do_not_depend_on_the_image_width_at_a_fixed_input_height(name, wide_lengths):
    narrow = build(name, (30, 70, 3), len(CHARSET), [4], input_height=32)
    wide = build(name, (80, 450, 3), len(CHARSET), wide_lengths, input_height=32)
    assert [w.shape for w in narrow.weights] == [w.shape for w in wide.weights]
    wide.set_weights(narrow.get_weights())


def test_auto_on_a_small_set_validates_often_and_trains_long_enough_to_leave_the_blank_phase():
    chosen = recipe.choose(_spec(50, 200, 837))
    assert chosen["model"] in MODELS and chosen["input_height"] == recipe.INPUT_HEIGHT
    assert chosen["steps_per_epoch"] == recipe.MIN_STEPS_PER_EPOCH  # one pass of 837 records is 27 batches of 32
    assert chosen["epochs"] * chosen["steps_per_epoch"] >= recipe.MIN_STEPS
    assert not chosen["augment"] and chosen["cache"] and chosen["lr_schedule"] == "cosine"


def test_auto_on_a_large_set_caps_the_epoch_and_skips_the_cache_when_it_does_not_fit():
    chosen = recipe.choose(_spec(80, 450, 2_000_000))
    assert chosen["steps_per_epoch"] == recipe.MAX_STEPS_PER_EPOCH
    assert chosen["epochs"] * chosen["steps_per_epoch"] >= recipe.MIN_EPOCHS * 2_000_000 // recipe.BATCH_SIZE
    assert not chosen["cache"]


def test_auto_with_a_time_budget_lets_the_budget_end_training():
    chosen = recipe.choose(_spec(50, 200, 837), time_budget=60)
    assert chosen["epochs"] == chosen["patience"] == recipe.UNLIMITED


def test_auto_reads_labels_of_one_length_per_position_and_of_several_with_ctc():
    one = recipe.choose(_spec(35, 100, 1320, lengths=(4,)))
    assert one["model"] == recipe.ONE_LENGTH_MODEL == "attn_small" and one["batch_size"] == recipe.BATCH_SIZE == 32
    assert not one["ink"] and not one["jitter"]  # the colours, as every set of one length was measured
    several = recipe.choose(_spec(80, 450, 8000, lengths=(4, 5, 6)))  # 176 columns at 32 px: 22 frames of 8
    assert several["model"] == recipe.MODEL == "ctc_wide8"
    assert several["learning_rate"] == recipe.SEVERAL_LENGTHS_PEAK_LEARNING_RATE
    assert several["batch_size"] == recipe.SEVERAL_LENGTHS_BATCH_SIZE < recipe.BATCH_SIZE
    assert several["ink"] and several["jitter"] and several["crop"] is False  # no characters measured: no crop
    assert several["steps_per_epoch"] == recipe.MAX_STEPS_PER_EPOCH  # 8,000 / 16 = 500 batches a pass, capped
    narrow = recipe.choose(_spec(35, 100, 1320, lengths=(4, 5, 6, 7, 8)))  # 88 columns: 11 frames of 8, 15 needed
    assert narrow["model"] == recipe.NARROW_MODEL == "ctc_small"


def test_resolve_keeps_what_the_user_set_and_replaces_auto(monkeypatch):
    monkeypatch.setattr(ink, "measure", lambda spec: 0.6)  # the fake spec has no shards to measure
    config = train.TrainConfig(model="auto", data_dir="d", model_dir="m", batch_size=8, time_budget=60)
    resolved = recipe.resolve(config, _spec(50, 200, 837))
    assert resolved.model == recipe.ONE_LENGTH_MODEL and resolved.batch_size == 8 and resolved.time_budget == 60
    assert resolved.learning_rate == recipe.PEAK_LEARNING_RATE and resolved.input_height == recipe.INPUT_HEIGHT
    assert "at 32x128 (images 50x200)" in recipe.describe(resolved, _spec(50, 200, 837))
    several = _spec(80, 450, 8000, lengths=(4, 5, 6))
    noink = recipe.resolve(dataclasses.replace(config, ink=False), several)  # --noink: kept, --jitter: auto's
    assert noink.ink is False and noink.jitter is True
    assert "crop off, ink off, jitter on" in recipe.describe(noink, several)
    cropped = recipe.resolve(dataclasses.replace(config, crop=True), several)  # --crop: the least input height
    assert cropped.crop is True and cropped.input_height == recipe.INPUT_HEIGHT
    line = recipe.describe(cropped, several)
    assert "at 32x176 (images 80x450; each image's text box scaled to it)" in line and "crop on, ink on" in line
    small = recipe.resolve(config, several)  # ink.measure says 0.6 here
    assert small.crop is False and "crop off" in recipe.describe(small, several, 0.6)
    line = recipe.describe(dataclasses.replace(small, crop=True, input_height=32), several, 0.36)
    assert "(images 80x450; characters 36% of the frame's height, so each image's text box is scaled to it)" in line
    other = train.TrainConfig(model="ctc", data_dir="d", model_dir="m")
    assert recipe.resolve(other, _spec(50, 200, 837)) is other


@pytest.fixture(scope="module")
def auto_runs(fixed_dataset, variable_dataset, tmp_path_factory):
    """{reader: model_dir} of finished 2-step --model=auto runs (128x64): attn_small on fixed_dataset (labels of 4
    characters), ctc_small on variable_dataset (4 to 6: 64 columns at 32 px are too few for ctc_wide8)."""
    runs = {}
    for reader, data_dir in ((recipe.ONE_LENGTH_MODEL, fixed_dataset), (recipe.NARROW_MODEL, variable_dataset)):
        runs[reader] = str(tmp_path_factory.mktemp(reader))
        train.train_and_evaluate(train.TrainConfig(model="auto", data_dir=data_dir, model_dir=runs[reader], epochs=1,
                                                   steps_per_epoch=2, batch_size=8, seed=0))
    return runs


@pytest.mark.parametrize("reader", [recipe.ONE_LENGTH_MODEL, recipe.NARROW_MODEL])
def test_auto_records_what_it_picked(auto_runs, reader):
    with open(os.path.join(auto_runs[reader], "config.json")) as f:
        config = json.load(f)
    assert config["model"] == reader and config["input_height"] == recipe.INPUT_HEIGHT
    assert config["learning_rate"] == (recipe.PEAK_LEARNING_RATE if reader == recipe.ONE_LENGTH_MODEL
                                       else recipe.SEVERAL_LENGTHS_PEAK_LEARNING_RATE) and config["augment"] is False
    assert config["ink"] is config["jitter"] is (reader != recipe.ONE_LENGTH_MODEL) and config["crop"] is False
    assert config["epochs"] == 1 and config["batch_size"] == 8  # given, so kept


@pytest.mark.parametrize("reader", [recipe.ONE_LENGTH_MODEL, recipe.NARROW_MODEL])
@pytest.mark.parametrize("auto", [True, False])
def test_an_auto_reader_fine_tunes_on_images_of_another_size(auto_runs, reader, auto, tmp_path_factory):
    wider = _render(str(tmp_path_factory.getbasetemp() / "wider_dataset"), "--train_size=16", "--val_size=8",
                    "--test_size=8", "--width=200", "--height=50", "--length=4")
    model_dir = str(tmp_path_factory.mktemp("tuned"))
    config = train.TrainConfig(model="auto" if auto else reader, data_dir=wider, model_dir=model_dir,
                               init_from=auto_runs[reader], epochs=1, steps_per_epoch=1, batch_size=8)
    resolved = train.finetune.inherit(recipe.resolve(config, DatasetSpec.load(wider)))
    assert resolved.model == reader and resolved.input_height == recipe.INPUT_HEIGHT
    assert resolved.ink is (reader == recipe.NARROW_MODEL)  # the init run's, given or not
    model_built = train.build_model(resolved, DatasetSpec.load(wider))
    assert model_built.input_shape == (None, 50, 200, 3)
    init = train.rundir.load_model(auto_runs[reader])
    for tuned, original in zip(model_built.get_weights(), init.get_weights()):
        np.testing.assert_array_equal(tuned, original)
    if not auto or reader != recipe.ONE_LENGTH_MODEL:
        return  # the rest is the same training with other settings
    train.train_and_evaluate(config)
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["learning_rate"] == recipe.FINE_TUNE_PEAK_LEARNING_RATE


def test_fine_tuning_at_another_input_height_names_the_layer_that_does_not_fit(auto_runs, fixed_dataset, tmp_path):
    config = train.TrainConfig(model=recipe.NARROW_MODEL, data_dir=fixed_dataset, model_dir=str(tmp_path / "m"),
                               init_from=auto_runs[recipe.NARROW_MODEL], input_height=48, epochs=1, steps_per_epoch=1)
    with pytest.raises(UserError, match=r"does not fit this dataset: .* is \(256, 128\) there, \(384, 128\) here"):
        train.train_and_evaluate(config)
    assert not os.path.exists(tmp_path / "m")


def _page(height, width, char_rows, lines=False):
    """A white uint8 image with dark 'characters' (bars) spanning `char_rows` rows, and thin strike lines."""
    image = np.full((height, width, 3), 255, np.uint8)
    top = (height - char_rows) // 2
    for x in range(4, width - 8, 12):
        image[top:top + char_rows, x:x + 3] = (40, 90, 160)  # a vertical stroke: the character's height
        image[top:top + 2, x:x + 7] = (40, 90, 160)  # and a crossbar
    if lines:
        image[np.arange(width) * height // (2 * width) + height // 4, np.arange(width)] = (0, 0, 0)
    return image


def test_character_height_is_the_strokes_not_the_strike_lines_nor_the_frame():
    assert ink.character_height(_page(80, 460, 20)) == pytest.approx(20 / 80)
    assert ink.character_height(_page(80, 460, 20, lines=True)) == pytest.approx(20 / 80, abs=0.05)
    assert ink.character_height(_page(35, 100, 26)) == pytest.approx(26 / 35)
    assert ink.character_height(np.full((30, 70, 3), 200, np.uint8)) is None  # no ink
    grey = _page(50, 200, 30)[..., :1]  # one channel
    assert ink.character_height(grey) == pytest.approx(30 / 50)


@pytest.mark.parametrize("shape, character_height, expected", [
    ((80, 460, 3), 0.25, 64), ((80, 460, 3), 0.36, 48), ((50, 200, 3), 0.6, 32), ((30, 70, 3), 0.93, 32),
    ((40, 300, 3), 0.2, 32), ((120, 600, 3), 0.05, 112), ((50, 200, 3), None, 32)])
def test_the_input_is_tall_enough_for_the_characters_but_not_above_the_frame(shape, character_height, expected):
    assert recipe.input_height(_spec(*shape[:2], 1000), character_height) == expected
    uncropped = recipe.choose(_spec(*shape[:2], 1000), character_height=character_height, crop=False)  # --nocrop
    assert uncropped["input_height"] == expected and uncropped["crop"] is False


@pytest.mark.parametrize("character_height, lengths, crop", [
    (0.36, (4, 8), True), (0.25, (5,), True), (0.49, (4, 8), True), (0.5, (4, 8), False), (0.72, (4, 8), False),
    (0.93, (4,), False), (None, (4, 8), False)])
def test_auto_crops_to_the_text_where_the_characters_are_small_in_their_frame(character_height, lengths, crop):
    chosen = recipe.choose(_spec(80, 460, 8000, lengths=lengths), character_height=character_height)
    assert chosen["crop"] is crop
    # The crop makes the text fill the input's height: the least input height serves, however small the text.
    assert chosen["input_height"] == (recipe.INPUT_HEIGHT if crop else recipe.input_height(
        _spec(80, 460, 8000), character_height))
    assert recipe.choose(_spec(80, 460, 8000, lengths=lengths), character_height=character_height,
                         crop=True)["input_height"] == recipe.INPUT_HEIGHT  # --crop given: kept, at the least height


def test_auto_measures_the_characters_and_says_why_in_its_line(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    measured = ink.measure(spec)
    assert 0.3 < measured < 1  # the library's renders: large characters in a 128x64 frame
    resolved = recipe.resolve(train.TrainConfig(model="auto", data_dir=fixed_dataset, model_dir="m"), spec)
    assert resolved.crop is (measured < recipe.CROP_BELOW)
    assert resolved.input_height == (recipe.INPUT_HEIGHT if resolved.crop else recipe.input_height(spec, measured))
    line = recipe.describe(resolved, spec, measured)
    assert f"characters {measured:.0%} of the frame's height" in line
    given = recipe.resolve(train.TrainConfig(model="auto", data_dir=fixed_dataset, model_dir="m", input_height=48),
                           spec)
    assert given.input_height == 48  # a height given is kept (and nothing is measured)


def test_train_examples_reads_the_same_first_records_every_epoch(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    serialized = next(iter(tf.data.TFRecordDataset(spec.shard_paths("train")).batch(10)))  # shard order
    first = data.parse_batch(serialized, spec)[1].numpy()
    limited = data.make_dataset(spec, "train", 5, training=True, seed=0, limit=10)
    seen = [tuple(row) for _, labels in limited.take(12) for row in labels.numpy()]
    assert set(seen) == {tuple(row) for row in first}  # 60 draws from those 10 records only, all of them
    chosen = recipe.choose(_spec(50, 200, 100_000), train_examples=250)
    assert chosen["steps_per_epoch"] == recipe.MIN_STEPS_PER_EPOCH  # sized by the 250 records, not the 100,000
    with pytest.raises(UserError, match="train_examples must be at least 1"):
        train.check_config(train.TrainConfig(model="ctc", data_dir="d", model_dir="m", train_examples=0))


@pytest.mark.parametrize("flags, expected", [
    ("fpu avx2 avx512f avx512_bf16 fma", "avx512_bf16"), ("fpu amx_bf16 amx_tile avx512_bf16", "amx_bf16"),
    ("fpu avx2 avx512f fma", None)])
def test_bfloat16_is_picked_on_a_cpu_that_computes_in_it(tmp_path, monkeypatch, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert recipe.bfloat16_cpu(str(cpuinfo)) == expected
    assert recipe.bfloat16_cpu(str(tmp_path / "missing")) is None  # no /proc/cpuinfo (macOS, Windows): float32
    monkeypatch.setattr(recipe.keras.distribution, "list_devices", lambda kind=None: ["gpu:0"])
    assert recipe.bfloat16_cpu(str(cpuinfo)) is None  # training runs on the GPU, not on this CPU


@pytest.mark.parametrize("cpu_flag, precision", [("avx512_bf16", "mixed_bfloat16"), (None, "float32")])
def test_auto_trains_in_bfloat16_where_the_cpu_has_it_and_says_why(monkeypatch, cpu_flag, precision):
    monkeypatch.setattr(ink, "measure", lambda spec: 0.6)
    monkeypatch.setattr(recipe, "bfloat16_cpu", lambda: cpu_flag)
    spec = _spec(50, 200, 837)
    resolved = recipe.resolve(train.TrainConfig(model="auto", data_dir="d", model_dir="m"), spec)
    assert resolved.precision == precision
    assert (f"{precision} (the CPU has {cpu_flag})" if cpu_flag else "float32, batch") in recipe.describe(
        resolved, spec, cpu_flag=cpu_flag)
    given = train.TrainConfig(model="auto", data_dir="d", model_dir="m", precision="mixed_float16")
    assert recipe.resolve(given, spec).precision == "mixed_float16"  # a precision given is kept


def test_auto_caches_cropped_frames_by_the_size_of_their_prepared_input():
    # 330,000 train and val frames of 80x450x3 (36 GB) do not fit the cache; cropped to 32x176 ink (1.9 GB) they do.
    several = (4, 5, 6, 7, 8)
    assert not recipe.choose(_spec(80, 450, 300_000, lengths=several), character_height=0.6)["cache"]
    cropped = recipe.choose(_spec(80, 450, 300_000, lengths=several), character_height=0.3)
    assert cropped["crop"] and cropped["ink"] and cropped["cache"]
