"""One measured training run on the backend KERAS_BACKEND names; run.py starts it as a subprocess.

--mode=protocol: the accuracy protocol (experiments.protocol's train-then-measure, through the trainer's own functions:
train.train_and_evaluate, then protocol.measure), with an InputWait callback in the same fit: the protocol row, the
input-wait fraction of the run and its images/s, as JSON in --out_json and the Markdown row on stdout.

--mode=wait: a short fit of --steps steps (no validation, no export) on the same tf.data input, for the input-wait
fraction on the cores this process may use (run.py restricts them with sched_setaffinity); with --profile_steps, a
further fit of that many steps under the torch profiler, for the kernel names (is the GRU on cuDNN?).

    KERAS_BACKEND=torch python -m tools.gpu_check.train_one --mode=wait --model=ctc --data_dir=/tmp/gc/data \\
        --model_dir=/tmp/gc/wait --batch_size=16 --steps=10 --out_json=/tmp/gc/wait.json
"""
import argparse
import json
import os
import re
import sys
import threading
import time

import keras

from experiments import protocol, report
from trainer import data as data_lib
from trainer import train
from trainer.spec import DatasetSpec

RNN_KERNEL = re.compile(r"rnn|gru|cudnn|persist", re.IGNORECASE)


def _sync(logs):
    """Waits for the step's device work, so a step's time is its own and input waits are real idle time."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif backend == "jax":
        import jax
        jax.block_until_ready(logs)


class InputWait(keras.callbacks.Callback):
    """Time blocked on the input iterator against time in the train step, in the fit it is passed to.

    Keras's torch and JAX fit loops call `next()` on the input between one batch's on_train_batch_end and the next
    batch's on_train_batch_begin, so that gap is the input wait; begin -> end (after a device sync) is the step.
    Gaps across an epoch boundary (validation) and the first `warmup` steps are left out. Under the tensorflow
    backend the iterator runs inside the step function, so the wait reads ~0 there: not a measurement.
    """

    def __init__(self, batch_size, warmup=5):
        super().__init__()
        self.batch_size, self.warmup = batch_size, warmup
        self.steps = self.counted = 0
        self.wait_s = self.step_s = 0.0
        self._begin = self._end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._end = None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if self._end is not None and self.steps >= self.warmup:
            self.wait_s += now - self._end
        self._begin = now

    def on_train_batch_end(self, batch, logs=None):
        _sync(logs)
        now = time.perf_counter()
        if self.steps >= self.warmup:
            self.step_s += now - self._begin
            self.counted += 1
        self.steps += 1
        self._end = now

    def result(self):
        total = self.wait_s + self.step_s
        return {"steps_counted": self.counted, "wait_s": round(self.wait_s, 3), "step_s": round(self.step_s, 3),
                "wait_fraction": round(self.wait_s / total, 4) if total else None,
                "images_per_s": round(self.counted * self.batch_size / total, 1) if total else None,
                "backend": keras.backend.backend(),
                "note": None if keras.backend.backend() != "tensorflow" else
                "tensorflow backend: the iterator runs inside the step, so the wait is not separable"}


class Utilisation:
    """Samples torch.cuda.utilization() (NVML) every `every` seconds in a thread while open."""

    def __init__(self, every=0.25):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self.error = None

    def __enter__(self):
        try:
            import torch
            if not torch.cuda.is_available():
                raise RuntimeError("no CUDA device")
            torch.cuda.utilization()
        except Exception as e:  # no torch, no GPU, no NVML
            self.error = "%s: %s" % (type(e).__name__, e)
            return self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        import torch
        while not self._stop.wait(self.every):
            self.samples.append(torch.cuda.utilization())

    def __exit__(self, *exc):
        self._stop.set()

    def result(self):
        if not self.samples:
            return {"samples": 0, "error": self.error}
        return {"samples": len(self.samples), "mean_pct": round(sum(self.samples) / len(self.samples), 1),
                "max_pct": max(self.samples)}


def profile_kernels(model, dataset, steps):
    """Runs `steps` train steps under the torch profiler; the CUDA kernel and op names that show which GRU ran."""
    if keras.backend.backend() != "torch":
        return {"error": "the kernel check needs KERAS_BACKEND=torch"}
    import torch
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        if cuda:
            torch.cuda.synchronize()
    kernels, ops = [], []
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", None)
        if device_us is None:
            device_us = getattr(event, "self_cuda_time_total", 0)
        is_kernel = str(getattr(event, "device_type", "")).endswith("CUDA")
        time_us = float(device_us) if is_kernel else float(getattr(event, "self_cpu_time_total", 0))
        (kernels if is_kernel else ops).append((event.key, event.count, time_us))
    kernels.sort(key=lambda k: -k[2])
    rnn_kernels = [k for k in kernels if RNN_KERNEL.search(k[0])]
    cudnn_ops = [o for o in ops if "cudnn_rnn" in o[0]]
    rnn_ops = [o for o in ops if re.search(r"rnn|gru", o[0], re.IGNORECASE)]
    return {"cuda": cuda, "steps": steps,
            "gru_on_cudnn": bool(cuda and cudnn_ops and rnn_kernels),
            "cudnn_rnn_ops": [{"name": n, "count": c} for n, c, _ in cudnn_ops],
            "rnn_ops": [{"name": n, "count": c} for n, c, _ in rnn_ops[:10]],
            "rnn_kernels": [{"name": n[:160], "count": c, "device_ms": round(t / 1e3, 2)} for n, c, t in rnn_kernels[:10]],
            "top_kernels": [{"name": n[:160], "count": c, "device_ms": round(t / 1e3, 2)} for n, c, t in kernels[:12]],
            "top_ops": [{"name": n[:120], "count": c, "self_cpu_ms": round(t / 1e3, 2)}
                        for n, c, t in sorted(ops, key=lambda o: -o[2])[:12]]}


def config_for(args):
    return train.TrainConfig(model=args.model, data_dir=args.data_dir, model_dir=args.model_dir,
                             batch_size=args.batch_size, precision=args.precision, overwrite=True,
                             epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, time_budget=args.train_seconds,
                             lr_schedule="cosine", warmup=args.warmup, learning_rate=args.learning_rate,
                             patience=10_000, seed=args.seed, verify_shards=False)


def run_protocol(args):
    config = config_for(args)
    wait = InputWait(config.batch_size)
    with Utilisation() as util:
        _, images_per_s, train_minutes = report.train_timed(config, [wait])
    measured = time.perf_counter()
    row = protocol.measure(config.model_dir, config.data_dir, images_per_s, train_minutes, args.direct_count,
                           timing_seconds=args.timing_seconds)
    table = report.markdown_table([row], protocol.ROW_KEYS)
    print(table, end="")
    return {"row": row, "markdown": table.splitlines()[-1], "input_wait": wait.result(),
            "gpu_util_training": util.result(), "train_wall_s": round(train_minutes * 60, 1),
            "measure_wall_s": round(time.perf_counter() - measured, 1),
            "config": {k: getattr(config, k) for k in ("model", "batch_size", "precision", "time_budget",
                                                       "steps_per_epoch", "lr_schedule", "warmup", "learning_rate")}}


def run_wait(args):
    """The wait-mode result; written to --out_json before the profile too, so a profile cut short keeps it."""
    config = config_for(args)
    spec = DatasetSpec.load(config.data_dir)
    model = train.build_model(config, spec)
    dataset = data_lib.make_dataset(spec, "train", config.batch_size, training=True, seed=config.seed)
    wait = InputWait(config.batch_size, warmup=args.warmup_steps)
    with Utilisation() as util:
        model.fit(dataset, epochs=1, steps_per_epoch=args.steps + args.warmup_steps, callbacks=[wait], verbose=0)
    result = {"cores": len(os.sched_getaffinity(0)), "input_wait": wait.result(), "gpu_util": util.result()}
    if args.profile_steps:
        write(args, dict(result, kernels={"error": "the profile did not finish"}))
        result["kernels"] = profile_kernels(model, dataset, args.profile_steps)
    return result


def write(args, result):
    result = dict(result, mode=args.mode, model=args.model, backend=keras.backend.backend(),
                  cores=len(os.sched_getaffinity(0)))
    with open(args.out_json + ".tmp", "w") as f:
        json.dump(result, f, indent=2, default=str)
    os.replace(args.out_json + ".tmp", args.out_json)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("protocol", "wait"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--out_json", required=True)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--train_seconds", type=float, default=100)
    parser.add_argument("--epochs", type=int, default=10_000)
    parser.add_argument("--steps_per_epoch", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--direct_count", type=int, default=2000)
    parser.add_argument("--timing_seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=60, help="wait mode: steps measured")
    parser.add_argument("--warmup_steps", type=int, default=10, help="wait mode: steps run first, not measured")
    parser.add_argument("--profile_steps", type=int, default=0, help="wait mode: steps under the torch profiler")
    args = parser.parse_args(argv)
    write(args, run_protocol(args) if args.mode == "protocol" else run_wait(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
