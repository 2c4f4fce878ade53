"""The trainer on the JAX and PyTorch Keras backends, models saved before uint8 input, and the flags that depend on
the backend.

A Keras backend is chosen once per process, so each backend's run is its own `python -c` process with
KERAS_BACKEND set; this process (TensorFlow) then checks what it wrote, the SavedModel included.
"""
import csv
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import CHARSET, fixed_dataset, trained, variable_dataset  # noqa: F401 (fixtures)

from trainer import data, decoding, export, rundir, scoring, serving, train
from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.models import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Trains ctc_lite for 2 one-step epochs with a cosine learning rate, killed after the first and resumed, evaluates
# the test split and reads its first 6 records; prints one JSON line.
_RUN = """
import json, sys
import keras, tensorflow as tf
from trainer import data, decoding, scoring, train
from trainer import spec as spec_lib

data_dir, model_dir = sys.argv[1:]

class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("killed")

config = train.TrainConfig(model="ctc_lite", data_dir=data_dir, model_dir=model_dir, batch_size=8, epochs=2,
                           steps_per_epoch=2, seed=0, lr_schedule="cosine")
try:
    train.train_and_evaluate(config, extra_callbacks=[Kill()])
except KeyboardInterrupt:
    pass
history = train.train_and_evaluate(config)
result = scoring.evaluate(model_dir, data_dir, "test", batch_size=8)
spec = spec_lib.DatasetSpec.load(data_dir)
serialized = list(tf.data.TFRecordDataset(spec.shard_paths("test")).take(6))
images, _ = data.parse_batch(tf.stack(serialized), spec)
texts, confidence = decoding.predict_text(train.rundir.load_model(model_dir), images.numpy(), spec.charset)
print(json.dumps({"backend": keras.backend.backend(), "resumed_epochs": history.epoch, "test": result,
                  "texts": texts, "confidence": confidence.tolist()}))
"""


def _on_backend(backend, script, *args):
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "KERAS_BACKEND": backend})


@pytest.mark.parametrize("backend", [
    "jax",
    pytest.param("torch", marks=pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="PyTorch is not installed (too large for CI); pip install torch==2.13.0 for its CPU build")),
])
def test_other_backend_trains_resumes_evaluates_and_exports(backend, fixed_dataset, tmp_path):
    model_dir = str(tmp_path / "model")
    done = _on_backend(backend, _RUN, fixed_dataset, model_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend and out["resumed_epochs"] == [1]
    assert f"with {backend} on cpu, float32, into {model_dir}" in done.stdout  # the start line, once per start
    with open(os.path.join(model_dir, "log.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    # Cosine over 4 steps, logged as set before each epoch's last step (2 and 4): JAX's fit keeps the step count and
    # learning rate in its own state, which the schedule must sync to see and to change.
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.85355e-3, 0.14645e-3], rel=1e-3)
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)
    assert out["test"]["num_examples"] == 16 and 0 <= out["test"]["char_acc"] <= 1
    assert not os.path.exists(os.path.join(model_dir, "backup"))
    # The SavedModel, exported under TensorFlow, reads as the backend's model did.
    spec = spec_lib.DatasetSpec.load(fixed_dataset)
    serialized = tf.stack(list(tf.data.TFRecordDataset(spec.shard_paths("test")).take(6)))
    encoded = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
    served = serving.load_signature(model_dir)(images=encoded)
    assert [t.decode() for t in served["text"].numpy()] == out["texts"]
    np.testing.assert_allclose(served["confidence"].numpy(), out["confidence"], rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("backend, overrides, match", [
    ("torch", {"strategy": "mirrored"}, "--strategy=mirrored does not work on the torch Keras backend; use "
                                        "KERAS_BACKEND=tensorflow, or leave the flag out"),
    ("torch", {"jit_compile": True}, "--jit_compile does not work on the torch Keras backend; use "
                                     "KERAS_BACKEND=tensorflow or jax, or leave the flag out"),
])
def test_backend_flags_are_refused_naming_the_backend(backend, overrides, match, fixed_dataset, tmp_path,
                                                      monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)  # check_config reads nothing else of it
    config = train.TrainConfig(model="ctc", data_dir=fixed_dataset, model_dir=str(tmp_path / "model"), **overrides)
    with pytest.raises(UserError, match=match):
        train.check_config(config)
    assert not os.path.exists(config.model_dir)


def test_main_refuses_a_flag_of_another_backend_in_one_line(fixed_dataset, tmp_path):
    model_dir = tmp_path / "model"
    done = subprocess.run([sys.executable, "-m", "trainer.main", "--model=cnn", f"--data_dir={fixed_dataset}",
                           f"--model_dir={model_dir}", "--strategy=mirrored"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("error: --strategy=mirrored does not work on the jax Keras "
                                                    "backend; use KERAS_BACKEND=tensorflow, or leave the flag out")
    assert not model_dir.exists()


def test_model_takes_uint8_and_scales_it_inside(trained):
    model = rundir.load_model(trained["cnn"][0])
    assert model.inputs[0].dtype == "uint8" and model.get_layer("scale").scale == pytest.approx(1 / 255)


def test_model_saved_before_uint8_input_loads_evaluates_and_exports(trained, tmp_path):
    """A best.keras of a float32 input in [0, 1] (runs trained before uint8 input) gets the scaling in front: it
    reads uint8 images as it read their float32 [0, 1] values."""
    model_dir, data_dir = trained["cnn"]
    current = rundir.load_model(model_dir)
    legacy = MODELS["cnn"]((64, 128, 3), len(CHARSET), [4])
    legacy.set_weights(current.get_weights())
    old_dir = tmp_path / "old_run"
    old_dir.mkdir()
    for name in ("spec.json", "config.json"):
        (old_dir / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
    legacy.save(str(old_dir / "best.keras"))

    loaded = rundir.load_model(str(old_dir))
    assert loaded.inputs[0].dtype == "uint8"
    images, _ = next(iter(data.make_dataset(spec_lib.DatasetSpec.load(data_dir), "test", 8, training=False)))
    # x * (1/255) against x / 255: an ulp apart, which the cnn's softmax once turned into 3e-6 (a clean-clone run of
    # 6159060)
    np.testing.assert_allclose(loaded.predict_on_batch(images),
                               legacy.predict_on_batch(tf.cast(images, tf.float32) / 255), rtol=1e-5, atol=1e-5)
    old_result = scoring.evaluate(str(old_dir), data_dir, "test")
    assert old_result.pop("run") == "unfinished"  # it has no saved_model/ yet
    assert dict(old_result, run="finished") == scoring.evaluate(model_dir, data_dir, "test")
    export.export_run(str(old_dir))
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    served = serving.load_signature(str(old_dir))(images=tf.constant(encoded))
    assert [t.decode() for t in served["text"].numpy()] == decoding.predict_text(current, images, CHARSET)[0]


def test_export_cli_writes_the_saved_model_and_refuses_other_backends(trained, tmp_path):
    model_dir, _ = trained["ctc"]
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("best.keras", "spec.json", "config.json"):
        (copy / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
    done = subprocess.run([sys.executable, "-m", "trainer.export", f"--model_dir={copy}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert tf.saved_model.contains_saved_model(str(copy / "saved_model"))
    other = subprocess.run([sys.executable, "-m", "trainer.export", f"--model_dir={copy}"], cwd=REPO,
                           capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert other.returncode == 1
    assert other.stderr.strip().splitlines()[-1] == (
        "error: the SavedModel export needs the tensorflow Keras backend, not jax: run KERAS_BACKEND=tensorflow "
        f"python -m trainer.export --model_dir={copy}")
