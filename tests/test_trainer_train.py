"""End to end: train, resume, export, evaluate and predict on tiny pipeline datasets."""
import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import CHARSET, copy_dataset, fixed_dataset, variable_dataset  # noqa: F401 (fixtures)

from trainer import data, decoding, evaluation, inference, train
from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.models import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(model, data_dir, model_dir, **overrides):
    settings = dict(batch_size=8, epochs=2, steps_per_epoch=2, seed=0) | overrides
    return train.TrainConfig(model=model, data_dir=data_dir, model_dir=str(model_dir), **settings)


def _epochs_logged(model_dir):
    with open(os.path.join(model_dir, "log.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _raw_images(data_dir, split, count):
    """The first `count` encoded PNGs and decoded float images of a split."""
    spec = spec_lib.load_spec(data_dir)
    serialized = tf.stack(list(tf.data.TFRecordDataset(spec_lib.shard_paths(spec, data_dir, split)).take(count)))
    encoded = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
    images, _ = data.parse_batch(serialized, spec_lib.image_shape(spec), max(spec["label_lengths"]))
    return encoded, data.to_float(images)


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(fixed_dataset, variable_dataset, tmp_path_factory):
    """model name -> (model_dir, data_dir): cnn on fixed-length labels, ctc on variable-length labels."""
    runs = {"cnn": fixed_dataset, "ctc": variable_dataset}
    result = {}
    for name, data_dir in runs.items():
        model_dir = tmp_path_factory.mktemp(name)
        history = train.train_and_evaluate(_config(name, data_dir, model_dir))
        assert history.epoch == [0, 1]
        result[name] = (str(model_dir), data_dir)
    return result


@pytest.mark.parametrize("name", ["cnn", "ctc"])
def test_training_writes_all_outputs(name, trained):
    model_dir, data_dir = trained[name]
    for output in ("best.keras", "spec.json", "config.json", "log.csv", "curves.png", "saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(model_dir, output)), output
    assert os.listdir(os.path.join(model_dir, "tensorboard"))
    assert not os.path.exists(os.path.join(model_dir, "backup"))  # deleted after a finished run
    assert spec_lib.load_spec(model_dir) == spec_lib.load_spec(data_dir)
    with open(os.path.join(model_dir, "log.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for key in ("loss", "val_loss", "val_captcha_acc", "val_char_acc", "learning_rate"):
        assert all(0 <= float(r[key]) < 1e3 for r in rows), key


@pytest.mark.parametrize("name", ["cnn", "ctc"])
def test_saved_model_reads_like_the_keras_model(name, trained):
    model_dir, data_dir = trained[name]
    encoded, images = _raw_images(data_dir, "test", 6)
    model = keras.models.load_model(os.path.join(model_dir, "best.keras"), compile=False)
    texts, confidence = decoding.predict_text(model, images, CHARSET)
    out = inference.load_signature(model_dir)(images=encoded)
    assert [t.decode() for t in out["text"].numpy()] == texts
    assert out["confidence"].dtype == tf.float32
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)


def test_evaluate_writes_json_and_error_grid(trained):
    model_dir, data_dir = trained["ctc"]
    result = evaluation.evaluate(model_dir, data_dir, "test", batch_size=4)
    with open(os.path.join(model_dir, "eval_test.json")) as f:
        assert json.load(f) == result
    assert os.path.exists(os.path.join(model_dir, "eval_test_errors.png"))
    assert result["num_examples"] == 8 and result["decoder"] == "greedy"
    assert len(result["position_acc"]) == 6  # labels of up to 6 characters
    assert 0 <= result["captcha_acc"] <= 1 and 0 <= result["char_acc"] <= 1
    by_length = result["length_acc"]
    assert {r["length"] for r in by_length} <= {4, 5, 6} and sum(r["num_examples"] for r in by_length) == 8
    assert sum(r["captcha_acc"] * r["num_examples"] for r in by_length) / 8 == pytest.approx(result["captcha_acc"])


def test_evaluate_cli_prints_a_table(trained):
    model_dir, data_dir = trained["cnn"]
    done = _run("trainer.evaluate", f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--split=val",
                "--batch_size=8")
    assert done.returncode == 0, done.stderr
    assert "captcha acc" in done.stdout and "position 3" in done.stdout and "length 4 acc" in done.stdout
    assert os.path.exists(os.path.join(model_dir, "eval_val.json"))


def test_predict_cli_reports_bad_images_and_reads_the_others(trained, tmp_path):
    model_dir, data_dir = trained["cnn"]
    encoded, images = _raw_images(data_dir, "test", 1)
    good = tmp_path / "good.png"
    good.write_bytes(encoded[0].numpy())
    not_image = tmp_path / "not_image.png"
    not_image.write_text("hello")
    missing = tmp_path / "missing.png"
    done = _run("trainer.predict", f"--model_dir={model_dir}", str(missing), str(good), str(not_image))
    assert done.returncode == 1
    model = keras.models.load_model(os.path.join(model_dir, "best.keras"), compile=False)
    expected, _ = decoding.predict_text(model, images, CHARSET)
    path, text, confidence = done.stdout.strip().split("\t")
    assert (path, text) == (str(good), expected[0]) and 0 < float(confidence) <= 1
    assert f"cannot read {missing}" in done.stderr and f"cannot decode {not_image}" in done.stderr


def _dataset_with(data_dir, dst, **spec_changes):
    """A copy of a dataset folder whose spec.json has `spec_changes`."""
    copy = copy_dataset(data_dir, dst)
    spec = spec_lib.load_spec(copy) | spec_changes
    with open(os.path.join(copy, "spec.json"), "w") as f:
        json.dump(spec, f)
    return copy


def test_charset_mismatch_is_a_clear_error(trained, tmp_path):
    model_dir, data_dir = trained["cnn"]
    other = _dataset_with(data_dir, tmp_path / "other", charset=CHARSET[::-1])
    with pytest.raises(UserError, match="charset mismatch"):
        evaluation.evaluate(model_dir, other, "test")
    with pytest.raises(UserError, match="charset mismatch"):
        train.train_and_evaluate(_config("cnn", other, model_dir))
    with pytest.raises(UserError, match="charset mismatch: the model outputs 36 classes"):
        decoding.is_ctc(36, "0123456789")


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("killed")


def test_interrupted_run_resumes_from_its_last_epoch(fixed_dataset, tmp_path):
    config = _config("cnn", fixed_dataset, tmp_path / "model", epochs=3, steps_per_epoch=1)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, extra_callbacks=[_StopAfterFirstEpoch()])
    assert _epochs_logged(config.model_dir) == [0]
    assert os.path.exists(os.path.join(config.model_dir, "backup"))
    history = train.train_and_evaluate(config)
    assert history.epoch == [1, 2]
    assert _epochs_logged(config.model_dir) == [0, 1, 2]


@pytest.mark.parametrize("verify_shards, match", [(True, "sha256"), (False, "cannot read shard")])
def test_corrupt_shard_stops_training_naming_it(fixed_dataset, tmp_path, verify_shards, match):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    shard = os.path.join(copy, "train.tfrecord-00000-of-00002")
    with open(shard, "r+b") as f:
        f.seek(300)
        f.write(b"\x00\x01\x02\x03")
    config = _config("cnn", copy, tmp_path / "model", verify_shards=verify_shards, epochs=1)
    with pytest.raises(UserError, match=f"train.tfrecord-00000-of-00002.*{match}|{match}.*train.tfrecord-00000"):
        train.train_and_evaluate(config)


@pytest.mark.parametrize("overrides, match", [
    ({"model": "rnn"}, "unknown model 'rnn'; expected one of cnn, ctc"),
    ({"strategy": "tpu"}, "unknown strategy"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"learning_rate": -1.0}, "learning_rate must be positive"),
    ({"lr_schedule": "cosine", "warmup": 1.0}, r"warmup must be a fraction in \[0, 1\), got 1.0"),
    ({"warmup": 0.1}, "--warmup needs --lr_schedule=cosine"),
    ({"clipnorm": 0.0}, "clipnorm must be positive, got 0.0"),
    ({"precision": "float8"}, "unknown precision 'float8'; expected one of float32, mixed_float16, mixed_bfloat16"),
])
def test_bad_config_is_a_clear_error(fixed_dataset, tmp_path, overrides, match):
    config = _config("cnn", fixed_dataset, tmp_path / "model")
    for key, value in overrides.items():
        setattr(config, key, value)
    with pytest.raises(UserError, match=match):
        train.train_and_evaluate(config)


def test_cnn_on_variable_length_labels_is_a_clear_error(variable_dataset, tmp_path):
    with pytest.raises(UserError, match="fixed-length labels"):
        train.train_and_evaluate(_config("cnn", variable_dataset, tmp_path / "model"))
    assert not os.path.exists(tmp_path / "model")


def test_model_dir_of_another_model_is_a_clear_error(trained):
    model_dir, data_dir = trained["cnn"]
    with pytest.raises(UserError, match="holds a 'cnn' model, not 'ctc'"):
        train.train_and_evaluate(_config("ctc", data_dir, model_dir))


@pytest.mark.parametrize("name", ["ctc", "cnn"])
def test_fine_tuning_starts_from_the_init_model(name, trained, fixed_dataset, tmp_path):
    init_dir, _ = trained[name]  # ctc: trained on labels of 4-6 characters, fine-tuned on 4
    spec = spec_lib.load_spec(fixed_dataset)
    init = keras.models.load_model(os.path.join(init_dir, "best.keras"), compile=False)
    model = train.build_model(_config(name, fixed_dataset, tmp_path / "model", init_from=init_dir), spec)
    for got, expected in zip(model.get_weights(), init.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    _, images = _raw_images(fixed_dataset, "test", 4)
    np.testing.assert_allclose(model.predict_on_batch(images), init.predict_on_batch(images), atol=1e-6)
    fresh = train.build_model(_config(name, fixed_dataset, tmp_path / "model"), spec)
    assert not np.allclose(fresh.predict_on_batch(images), init.predict_on_batch(images), atol=1e-3)


def test_fine_tuning_cli_lowers_the_default_learning_rate_and_augments(trained, fixed_dataset, tmp_path):
    init_dir, _ = trained["ctc"]
    model_dir = tmp_path / "model"
    done = _run("trainer.main", "--model=ctc", f"--init_from={init_dir}", f"--data_dir={fixed_dataset}",
                f"--model_dir={model_dir}", "--epochs=1", "--steps_per_epoch=1", "--batch_size=8", "--augment")
    assert done.returncode == 0, done.stderr
    with open(model_dir / "config.json") as f:
        config = json.load(f)
    assert config["learning_rate"] == train.FINE_TUNE_LEARNING_RATE == 1e-4
    assert config["init_from"] == init_dir and config["augment"] is True
    with open(model_dir / "log.csv", newline="") as f:
        assert [float(row["learning_rate"]) for row in csv.DictReader(f)] == pytest.approx([1e-4])
    assert os.path.exists(model_dir / "saved_model" / "saved_model.pb")


@pytest.mark.parametrize("name, changes, match", [
    ("ctc", {"charset": CHARSET[::-1]}, "charset mismatch: the model in .* was trained on"),
    ("ctc", {"image": {"height": 32, "width": 128, "channels": 3, "encoding": "png"}},
     r"image shape mismatch: .* takes \(64, 128, 3\), the dataset has \(32, 128, 3\)"),
    ("cnn", {"label_lengths": [5]}, r"label length mismatch: .* length \[4\], the dataset has \[5\]"),
])
def test_fine_tuning_on_an_incompatible_dataset_is_a_clear_error(name, changes, match, trained, fixed_dataset,
                                                                 tmp_path):
    init_dir, _ = trained[name]
    other = _dataset_with(fixed_dataset, tmp_path / "other", **changes)
    with pytest.raises(UserError, match=match):
        train.train_and_evaluate(_config(name, other, tmp_path / "model", init_from=init_dir))
    assert not os.path.exists(tmp_path / "model")


def test_fine_tuning_from_another_architecture_or_folder_is_a_clear_error(trained, fixed_dataset, tmp_path):
    init_dir, _ = trained["ctc"]
    with pytest.raises(UserError, match="architecture mismatch: .* holds a 'ctc' model, not 'cnn'; use --model=ctc"):
        train.train_and_evaluate(_config("cnn", fixed_dataset, tmp_path / "model", init_from=init_dir))
    with pytest.raises(UserError, match="best.keras not found: --init_from needs a model_dir"):
        train.train_and_evaluate(_config("ctc", fixed_dataset, tmp_path / "model", init_from=fixed_dataset))
    with pytest.raises(UserError, match="--init_from and --model_dir must differ"):
        train.train_and_evaluate(_config("ctc", fixed_dataset, init_dir, init_from=init_dir))
    assert not os.path.exists(tmp_path / "model")


def test_main_exits_non_zero_with_a_message_on_a_bad_data_dir(tmp_path):
    done = _run("trainer.main", "--model=ctc", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'm'}")
    assert done.returncode == 1
    assert "error:" in done.stderr and "spec.json not found" in done.stderr
    done = _run("trainer.main", "--model=rnn", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'm'}")
    assert done.returncode != 0 and "--model=rnn: value should be one of <%s>" % "|".join(MODELS) in done.stderr


def test_clipnorm_clips_the_global_gradient_norm(fixed_dataset, tmp_path):
    config = _config("ctc_lite", fixed_dataset, tmp_path / "model", clipnorm=0.5)
    model = train.build_model(config, spec_lib.load_spec(fixed_dataset))
    assert model.optimizer.global_clipnorm == 0.5
    gradients = [tf.fill(w.shape, 10.0) for w in model.trainable_weights]
    clipped = model.optimizer._clip_gradients(gradients)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(0.5, rel=1e-4)


def test_bfloat16_training_exports_a_model_that_reads_like_its_checkpoint(fixed_dataset, tmp_path):
    config = _config("ctc_lite", fixed_dataset, tmp_path / "model", precision="mixed_bfloat16", epochs=1)
    train.train_and_evaluate(config)
    assert keras.config.dtype_policy().name == "float32"  # the policy is the run's, not the process's
    model = keras.models.load_model(os.path.join(config.model_dir, "best.keras"), compile=False)
    assert model.layers[1].compute_dtype == "bfloat16" and model.layers[1].variable_dtype == "float32"
    encoded, images = _raw_images(fixed_dataset, "test", 6)
    texts, confidence = decoding.predict_text(model, images, CHARSET)
    out = inference.load_signature(config.model_dir)(images=encoded)
    assert [t.decode() for t in out["text"].numpy()] == texts
    assert out["confidence"].dtype == tf.float32
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)
