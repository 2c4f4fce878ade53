"""The GPU settings on CPU: a few steps of `ctc` and `cnn` with --precision=mixed_float16 and --jit_compile (as a GPU
runs them, together), and with --strategy=mirrored over two logical CPU devices, so a dtype or XLA slip shows before a
GPU sees it. One compiled model by default (ctc_small with mixed_float16 and XLA, as one GPU runs them); the mirrored
runs (ctc and cnn) and ctc and cnn with mixed_float16 and XLA are behind the `slow` marker: the suite's time is short.

Logical devices must be set before TensorFlow starts, so the runs are one `python -c` process of their own, which
also trains two mirrored models one after the other (trainer.train.mirrored_strategy).
"""
import json
import math
import os
import subprocess
import sys

import pytest

from trainer_fixtures import fixed_dataset  # noqa: F401 (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_SPEED = {"precision": "mixed_float16", "jit_compile": True}
MIRRORED = {"strategy": "mirrored"}
DEFAULT_RUNS = (("ctc_small", GPU_SPEED),)  # the GPU settings on a CTC reader that compiles in a third of ctc's time
MIRRORED_RUNS = (("ctc", MIRRORED), ("cnn", MIRRORED))

# Per model and setting: the compiled model as trainer.main builds it, 2 train steps of batch 4, then the validation
# callback (decoding included); prints one JSON line.
_RUN = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from trainer import callbacks, data, train
from trainer import spec as spec_lib

data_dir, model_dir, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = spec_lib.DatasetSpec.load(data_dir)
results = {"device": train.device_name("mirrored")}
for model, setting in runs:
    config = train.TrainConfig(model=model, data_dir=data_dir, model_dir=model_dir, batch_size=4, seed=0,
                               **setting)
    train.check_config(config)
    net = train.build_model(config, spec)
    history = net.fit(data.make_dataset(spec, "train", 4, training=True, seed=0), epochs=1,
                      steps_per_epoch=2, verbose=0, callbacks=[callbacks.CaptchaMetrics(
                          data.make_dataset(spec, "val", 8, training=False), spec.charset)])
    results[f"{model} {json.dumps(setting)}"] = {
        "loss": history.history["loss"][-1], "val_loss": history.history["val_loss"][-1],
        "val_char_acc": history.history["val_char_acc"][-1], "jit_compile": net.jit_compile,
        "optimizer": type(net.optimizer).__name__, "variable": type(net.trainable_variables[0].value).__name__,
        "compute_dtypes": sorted({layer.compute_dtype for layer in net.get_layer(model).layers}),
    }
print(json.dumps(results))
"""


def _check(fixed_dataset, model_dir, runs):
    done = subprocess.run([sys.executable, "-c", _RUN, fixed_dataset, model_dir, json.dumps(runs)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results.pop("device") == "2 replicas (mirrored)"
    assert len(results) == len(runs)
    for name, result in results.items():
        assert math.isfinite(result["loss"]) and math.isfinite(result["val_loss"]), name
        assert 0 <= result["val_char_acc"] <= 1, name
        setting = json.loads(name.split(" ", 1)[1])
        assert result["jit_compile"] == ("jit_compile" in setting), name
        assert (result["optimizer"] == "LossScaleOptimizer") == ("precision" in setting), name
        assert ("float16" in result["compute_dtypes"]) == ("precision" in setting), name  # the output stays float32
        assert (result["variable"] == "MirroredVariable") == ("strategy" in setting), name


def test_mixed_float16_and_xla_train_and_validate_ctc_on_cpu(fixed_dataset, tmp_path):
    _check(fixed_dataset, str(tmp_path / "model"), DEFAULT_RUNS)


@pytest.mark.slow  # ~90 s: two more compiled models
def test_mirrored_strategy_trains_and_validates_ctc_and_cnn_on_cpu(fixed_dataset, tmp_path):
    _check(fixed_dataset, str(tmp_path / "model"), MIRRORED_RUNS)


@pytest.mark.slow  # ~100 s: two larger XLA compiles
def test_the_gpu_recipes_ctc_and_cnn_with_mixed_float16_and_xla_on_cpu(fixed_dataset, tmp_path):
    _check(fixed_dataset, str(tmp_path / "model"), (("ctc", GPU_SPEED), ("cnn", GPU_SPEED)))
