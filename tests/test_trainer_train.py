"""End to end: train, resume, export, evaluate and predict on tiny pipeline datasets."""
import csv
import dataclasses
import filecmp
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import (CHARSET, FakeTime, copy_dataset, fixed_dataset, trained,  # noqa: F401 (fixtures)
                              variable_dataset)

from pipeline import ingest
from trainer import callbacks as callbacks_lib
from trainer import data, decoding, export, preprocess, scoring, serving, train
from trainer.errors import UserError
from trainer.models import MODELS
from trainer.spec import DatasetSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(model, data_dir, model_dir, **overrides):
    settings = dict(batch_size=8, epochs=2, steps_per_epoch=2, seed=0) | overrides
    return train.TrainConfig(model=model, data_dir=data_dir, model_dir=str(model_dir), **settings)


def _epochs_logged(model_dir):
    with open(os.path.join(model_dir, "log.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _raw_images(data_dir, split, count):
    """The first `count` encoded PNGs and decoded uint8 images of a split."""
    spec = DatasetSpec.load(data_dir)
    serialized = tf.stack(list(tf.data.TFRecordDataset(spec.shard_paths(split)).take(count)))
    encoded = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
    images, _ = data.parse_batch(serialized, spec)
    return encoded, images


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", ["cnn", "ctc"])
def test_training_writes_all_outputs(name, trained):
    model_dir, data_dir = trained[name]
    for output in ("best.keras", "spec.json", "config.json", "log.csv", "curves.png", "saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(model_dir, output)), output
    assert os.listdir(os.path.join(model_dir, "tensorboard"))
    assert not os.path.exists(os.path.join(model_dir, "backup"))  # deleted after a finished run
    assert filecmp.cmp(os.path.join(model_dir, "spec.json"), os.path.join(data_dir, "spec.json"), shallow=False)
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
    out = serving.load_signature(model_dir)(images=encoded)
    assert [t.decode() for t in out["text"].numpy()] == texts
    assert out["confidence"].dtype == tf.float32
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)


def test_evaluate_writes_json_and_error_grid(trained):
    model_dir, data_dir = trained["ctc"]
    result = scoring.evaluate(model_dir, data_dir, "test", batch_size=4)
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
    with open(os.path.join(copy, "spec.json")) as f:
        spec = json.load(f) | spec_changes
    with open(os.path.join(copy, "spec.json"), "w") as f:
        json.dump(spec, f)
    return copy


def test_charset_mismatch_is_a_clear_error(trained, tmp_path):
    model_dir, data_dir = trained["cnn"]
    other = _dataset_with(data_dir, tmp_path / "other", charset=CHARSET[::-1])
    with pytest.raises(UserError, match="charset mismatch"):
        scoring.evaluate(model_dir, other, "test")
    with pytest.raises(UserError, match="charset mismatch: the model outputs 36 classes"):
        decoding.is_ctc(36, "0123456789")


class _KillAfterEpoch(keras.callbacks.Callback):
    """Raises as a kill would, after `epoch` is logged and backed up (it runs after the trainer's callbacks)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("killed")


def _logged(model_dir, key):
    with open(os.path.join(model_dir, "log.csv"), newline="") as f:
        return [float(row[key]) for row in csv.DictReader(f)]


def test_interrupted_run_resumes_its_epochs_learning_rate_and_time_budget(fixed_dataset, tmp_path, monkeypatch):
    """A fake clock moves 10 s per step: a 40 s budget is 4 one-step epochs, with a cosine learning rate over the
    clock that warms up over the first 25%. Killed after epoch 1, the run resumes at epoch 2 with the 20 s left of
    its budget (not a new one) and the learning rate where it was (not back to the warm-up)."""
    clock = FakeTime()
    monkeypatch.setattr(callbacks_lib, "time", clock)
    tick = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: setattr(clock, "now", clock.now + 10))
    config = _config("cnn", fixed_dataset, tmp_path / "model", epochs=100, steps_per_epoch=1, learning_rate=0.01,
                     lr_schedule="cosine", warmup=0.25, time_budget=40.0)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, extra_callbacks=[tick, _KillAfterEpoch(1)])
    assert _epochs_logged(config.model_dir) == [0, 1]
    assert os.path.exists(os.path.join(config.model_dir, "backup"))
    history = train.train_and_evaluate(config, extra_callbacks=[tick])
    assert history.epoch == [2, 3]
    assert _epochs_logged(config.model_dir) == [0, 1, 2, 3]
    # Each epoch's step starts at 0, 10, 20, 30 s of 40: the ramp's start, the peak, then the cosine at 1/3 and 2/3.
    assert _logged(config.model_dir, "learning_rate") == pytest.approx([0.0, 0.01, 0.0075, 0.0025], abs=1e-7)
    assert not os.path.exists(os.path.join(config.model_dir, "backup"))


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
    ({"model": "rnn"}, "unknown model 'rnn'; expected one of attn_small, attn_base, cnn, ctc"),
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


@pytest.mark.parametrize("name", ["ctc", "cnn"])
def test_fine_tuning_starts_from_the_init_model(name, trained, fixed_dataset, tmp_path):
    init_dir, _ = trained[name]  # ctc: trained on labels of 4-6 characters, fine-tuned on 4
    spec = DatasetSpec.load(fixed_dataset)
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
     r"does not fit this dataset: .* \(the image height or --input_height differs"),
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
    with pytest.raises(UserError, match=r"--init_from .* holds no trained model \(no best.keras\)"):
        train.train_and_evaluate(_config("ctc", fixed_dataset, tmp_path / "model", init_from=fixed_dataset))
    with pytest.raises(UserError, match="--init_from and --model_dir must differ"):
        train.train_and_evaluate(_config("ctc", fixed_dataset, init_dir, init_from=init_dir))
    assert not os.path.exists(tmp_path / "model")


def test_main_exits_non_zero_with_a_message_on_a_bad_data_dir(tmp_path):
    done = _run("trainer.main", "--model=ctc", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'm'}")
    assert done.returncode == 1
    assert "error:" in done.stderr and "spec.json not found" in done.stderr
    done = _run("trainer.main", "--model=rnn", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'm'}")
    assert done.returncode != 0 and "--model=rnn: value should be one of <%s|auto>" % "|".join(MODELS) in done.stderr


def test_clipnorm_clips_the_global_gradient_norm(fixed_dataset, tmp_path):
    config = _config("ctc_lite", fixed_dataset, tmp_path / "model", clipnorm=0.5)
    model = train.build_model(config, DatasetSpec.load(fixed_dataset))
    assert model.optimizer.global_clipnorm == 0.5
    gradients = [tf.fill(w.shape, 10.0) for w in model.trainable_weights]
    clipped = model.optimizer._clip_gradients(gradients)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(0.5, rel=1e-4)


def test_bfloat16_training_exports_a_model_that_reads_like_its_checkpoint(fixed_dataset, tmp_path):
    config = _config("ctc_lite", fixed_dataset, tmp_path / "model", precision="mixed_bfloat16", epochs=1)
    train.train_and_evaluate(config)
    assert keras.config.dtype_policy().name == "float32"  # the policy is the run's, not the process's
    model = keras.models.load_model(os.path.join(config.model_dir, "best.keras"), compile=False)
    first_conv = model.get_layer("ctc_lite").layers[1]  # after the uint8 scaling, inside the architecture
    assert first_conv.compute_dtype == "bfloat16" and first_conv.variable_dtype == "float32"
    encoded, images = _raw_images(fixed_dataset, "test", 6)
    texts, confidence = decoding.predict_text(model, images, CHARSET)
    out = serving.load_signature(config.model_dir)(images=encoded)
    assert [t.decode() for t in out["text"].numpy()] == texts
    assert out["confidence"].dtype == tf.float32
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)


def _file_times(folder):
    return {os.path.relpath(os.path.join(d, f), folder): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files if not f.endswith(".lock")}  # locks hold pids


@pytest.mark.parametrize("dataset", ["its own", "another"])
def test_finished_model_dir_is_refused_saying_what_to_do(trained, fixed_dataset, dataset):
    model_dir, data_dir = trained["ctc"]  # trained on variable_dataset; fixed_dataset has its charset and image size
    before = _file_times(model_dir)
    with pytest.raises(UserError, match=rf"^--model_dir {model_dir} holds a finished run: pass --overwrite to train "
                                        rf"it again from scratch, --init_from={model_dir} with a new --model_dir to "
                                        r"continue training from it, or another --model_dir$"):
        train.train_and_evaluate(_config("ctc", data_dir if dataset == "its own" else fixed_dataset, model_dir))
    assert _file_times(model_dir) == before


def _interrupted_copy(model_dir, dst):
    """A copy of a finished model_dir that looks like a killed run: it has a backup/ folder."""
    shutil.copytree(model_dir, dst)
    os.makedirs(dst / "backup")
    return str(dst)


@pytest.mark.parametrize("model, changes, match", [
    ("cnn", {"identity": "0123456789ab"}, r"holds an interrupted run on another dataset \(identity '[0-9a-f]{12}', "
                                          r"not '0123456789ab'\): resume it with --data_dir="),
    ("cnn", {"label_lengths": [5]}, r"another dataset \(label lengths \[4\], not \[5\]\)"),
    ("ctc", {}, r"holds an interrupted 'cnn' run, not 'ctc': resume it with --model=cnn"),
    ("cnn", {"train_examples": 8}, r"holds an interrupted run on --train_examples=None, not 8: resume it with that "),
    ("cnn", {"ink": True}, r"holds an interrupted run with --noink: resume it with --noink, pass --overwrite"),
    ("cnn", {"crop": True}, r"holds an interrupted run with --nocrop: resume it with --nocrop, pass --overwrite"),
])
def test_interrupted_run_of_another_dataset_or_model_is_refused_before_writing(trained, tmp_path, model, changes,
                                                                               match):
    model_dir, data_dir = trained["cnn"]
    interrupted = _interrupted_copy(model_dir, tmp_path / "model")
    run_changes = {name: value for name, value in changes.items() if name in ("train_examples", "ink", "crop")}
    spec_changes = {name: value for name, value in changes.items() if name not in run_changes}
    other = _dataset_with(data_dir, tmp_path / "data", **spec_changes) if spec_changes else data_dir
    before = _file_times(interrupted)
    with pytest.raises(UserError, match=match):
        train.train_and_evaluate(_config(model, other, interrupted, **run_changes))
    assert _file_times(interrupted) == before


def test_overwrite_clears_only_the_run_files_first(trained, variable_dataset, tmp_path):
    model_dir, _ = trained["cnn"]
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    for name in ("backup/latest.weights.h5", "eval_test.json", "eval_val_errors.png", "notes.txt", "protocol.json"):
        os.makedirs(os.path.dirname(copy / name), exist_ok=True)
        (copy / name).write_text("x")
    config = _config("ctc", variable_dataset, copy, overwrite=True)
    spec = DatasetSpec.load(variable_dataset)
    train.check_model_dir(config, spec)  # another model and dataset: nothing to refuse, it starts over
    train.prepare_model_dir(config, spec)
    assert sorted(os.listdir(copy)) == [".trainer.lock", "config.json", "notes.txt", "protocol.json", "spec.json"]
    assert DatasetSpec.load(str(copy)).difference(spec) is None
    with open(copy / "config.json") as f:
        assert json.load(f)["model"] == "ctc"
    with pytest.raises(UserError, match="--model_dir and --data_dir must differ"):
        train.check_model_dir(dataclasses.replace(config, model_dir=variable_dataset), spec)


def test_model_dir_that_is_or_is_inside_a_file_is_a_clear_error(fixed_dataset, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UserError, match=f"^--model_dir {path} is not a folder$"):
        train.train_and_evaluate(_config("cnn", fixed_dataset, path))
    with pytest.raises(UserError, match=f"^cannot create --model_dir {path / 'run'}: {path} is not a directory$"):
        train.train_and_evaluate(_config("cnn", fixed_dataset, path / "run"))


def test_init_from_a_folder_without_a_model_is_a_clear_error(fixed_dataset, tmp_path):
    with pytest.raises(UserError, match=f"--init_from {tmp_path / 'missing'} does not exist"):
        train.train_and_evaluate(_config("cnn", fixed_dataset, tmp_path / "model", init_from=str(tmp_path / "missing")))
    assert not os.path.exists(tmp_path / "model")


def _empty_shard(data_dir, shard):
    open(os.path.join(data_dir, shard), "w").close()


def _break_image(data_dir, shard, index):
    """Rewrites `shard` with the image of its record `index` replaced by bytes that are not an image."""
    path = os.path.join(data_dir, shard)
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    records[index].features.feature["image"].bytes_list.value[0] = b"not an image"
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())


@pytest.mark.parametrize("fault, match", [
    (_empty_shard, r"^shard test.tfrecord-00001-of-00002 of .* holds 0 records, spec.json lists 8"),
    (lambda d, s: _break_image(d, s, 3), r"^record 3 of shard test.tfrecord-00001-of-00002 of .* does not decode: "),
])
def test_evaluate_names_a_shard_that_lost_or_broke_records(trained, tmp_path, fault, match):
    model_dir, data_dir = trained["cnn"]
    copy = copy_dataset(data_dir, tmp_path / "data")
    fault(copy, "test.tfrecord-00001-of-00002")
    with pytest.raises(UserError, match=match) as raised:
        scoring.evaluate(model_dir, copy, "test", batch_size=4, verify_shards=False)
    assert "\n" not in str(raised.value) and "Detected at node" not in str(raised.value)


def test_evaluate_refuses_a_cnn_on_other_label_lengths(trained, variable_dataset):
    model_dir, _ = trained["cnn"]
    with pytest.raises(UserError, match=r"label length mismatch: the 'cnn' model in .* reads labels of length \[4\], "
                                        r"the dataset has \[4, 5, 6\]"):
        scoring.evaluate(model_dir, variable_dataset, "test")


@pytest.mark.parametrize("content, match", [
    ('{"model": "cn', r"config.json is not valid JSON \(Unterminated string"),
    ('{"model": "cnn"}', "config.json: missing field decoder"),
    ('["cnn"]', "config.json must hold a JSON object"),
])
def test_damaged_config_json_is_a_clear_error(trained, tmp_path, content, match):
    model_dir, data_dir = trained["cnn"]
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "config.json").write_text(content)
    with pytest.raises(UserError, match=match):
        scoring.evaluate(str(copy), data_dir, "val")
    if "decoder" not in match:  # fine-tuning reads only the model name
        with pytest.raises(UserError, match=match):
            train.train_and_evaluate(_config("cnn", data_dir, tmp_path / "new", init_from=str(copy)))


def test_evaluate_names_a_model_dir_without_a_model(fixed_dataset, tmp_path):
    with pytest.raises(UserError, match=f"^--model_dir {tmp_path / 'missing'} does not exist$"):
        scoring.evaluate(str(tmp_path / "missing"), fixed_dataset)
    with pytest.raises(UserError, match=f"^--model_dir {fixed_dataset} holds no trained model"):
        scoring.evaluate(fixed_dataset, fixed_dataset)
    with pytest.raises(UserError, match="batch_size must be at least 1, got 0"):
        scoring.evaluate(fixed_dataset, fixed_dataset, batch_size=0)


def test_unloadable_model_files_are_clear_errors(trained, tmp_path):
    model_dir, data_dir = trained["cnn"]
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "best.keras").write_text("not a zip")
    (copy / "saved_model" / "saved_model.pb").write_text("not a proto")
    with pytest.raises(UserError, match=f"^cannot load {copy}/best.keras: "):
        scoring.evaluate(str(copy), data_dir)
    with pytest.raises(UserError, match=f"^cannot load the SavedModel in {copy}/saved_model: "):
        serving.load_signature(str(copy))
    with pytest.raises(UserError, match=f"^--model_dir {tmp_path / 'missing'} does not exist$"):
        serving.load_signature(str(tmp_path / "missing"))


@pytest.mark.parametrize("name", ["cnn", "ctc"])
def test_saved_model_answers_an_empty_batch_with_empty_results(name, trained):
    out = serving.load_signature(trained[name][0])(images=tf.constant([], tf.string))
    assert out["text"].shape == (0,) and out["text"].dtype == tf.string
    assert out["confidence"].shape == (0,) and out["confidence"].dtype == tf.float32


def _odd_images():
    """A 300x47 RGBA PNG, transparent on its left third, and a 60x90 JPEG."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (47, 300, 4), dtype=np.uint8)
    rgba[:, :100, 3] = 0
    jpeg = rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)
    return [tf.io.encode_png(rgba).numpy(), tf.io.encode_jpeg(jpeg).numpy()]


def test_saved_model_follows_the_preprocessing_of_its_spec(trained, tmp_path):
    """The trained run's SavedModel resizes as its spec.json says (trainer.preprocess); exported with a pad
    preprocessing it reads odd-sized images as the model reads the pipeline's PNGs of them, and records as before."""
    model_dir, data_dir = trained["cnn"]
    model = keras.models.load_model(os.path.join(model_dir, "best.keras"), compile=False)
    spec = DatasetSpec.load(model_dir)
    shape = spec.image_shape
    odd = _odd_images()
    pixels = tf.stack([preprocess.decode_image(image, shape, spec.preprocessing) for image in odd])
    texts, confidence = decoding.predict_text(model, pixels, CHARSET)
    out = serving.load_signature(model_dir)(images=tf.constant(odd))
    assert [t.decode() for t in out["text"].numpy()] == texts
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)

    pad = {"resize": "pad", "filter": "bilinear", "antialias": True, "pad_colour": "border_median", "alpha": "white"}
    export.export_saved_model(model, CHARSET, str(tmp_path / "saved_model"), preprocessing=pad)
    signature = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    pipeline_pngs = [ingest.to_png(image, shape[1], shape[0], "pad") for image in odd]
    texts, confidence = decoding.predict_text(
        model, tf.stack([tf.io.decode_png(png, channels=3) for png in pipeline_pngs]), CHARSET)
    out = signature(images=tf.constant(odd))
    assert [t.decode() for t in out["text"].numpy()] == texts
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=0.02)
    encoded, images = _raw_images(data_dir, "test", 6)
    texts, confidence = decoding.predict_text(model, images, CHARSET)
    out = signature(images=encoded)
    assert [t.decode() for t in out["text"].numpy()] == texts
    np.testing.assert_allclose(out["confidence"].numpy(), confidence, rtol=1e-3, atol=1e-7)
    assert signature(images=tf.constant([], tf.string))["text"].shape == (0,)


def test_model_dir_on_another_filesystem_trains_evaluates_and_exports(fixed_dataset):
    """model_dir is read and written through tf.io.gfile (Keras's callbacks through its own remote-path support), so a
    gs:// model_dir works; TensorFlow's in-memory ram:// filesystem stands in for a bucket here."""
    model_dir = "ram://runs/ctc_lite"
    history = train.train_and_evaluate(_config("ctc_lite", fixed_dataset, model_dir, epochs=1, steps_per_epoch=1))
    assert history.epoch == [0]
    for name in ("best.keras", "spec.json", "config.json", "log.csv", "curves.png", "tensorboard", "saved_model"):
        assert tf.io.gfile.exists(f"{model_dir}/{name}"), name
    assert not tf.io.gfile.exists(f"{model_dir}/backup")  # a finished run
    with pytest.raises(UserError, match="holds a finished run"):
        train.train_and_evaluate(_config("ctc_lite", fixed_dataset, model_dir, epochs=1, steps_per_epoch=1))
    result = scoring.evaluate(model_dir, fixed_dataset, "test", batch_size=8)
    assert json.loads(tf.io.gfile.GFile(f"{model_dir}/eval_test.json").read()) == json.loads(json.dumps(result))
    assert tf.io.gfile.GFile(f"{model_dir}/eval_test_errors.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    encoded, _ = _raw_images(fixed_dataset, "test", 2)
    assert len(serving.load_signature(model_dir)(images=encoded)["text"]) == 2
