"""Run: the GPU check, on the GPU host, from the pieces tools.gpu_check.stage cut (docs/gpu-check.md).

    python3 -m tools.gpu_check.run --status          # which piece folders this machine holds (a stash call)
    GPU_CHECK_OUT=$OUT python3 -m tools.gpu_check.run # the check: about 7.5 minutes at the defaults

1. reassembles the wheels from .gpu_wheels/pNN, checking every piece's and wheel's sha256 (a mismatch stops it with
   one `error:` line), and pip-installs them (--no-index --no-deps) into --site, outside the checkout;
2. renders a dataset on every core with the project's own renderer called directly (tools.gpu_check.render:
   apache-beam is not carried, so not `pipeline.main`);
3. per backend (--backends, default torch): the input-wait fraction of a short fit of --wait_model on each of
   --wait_cores cores (sched_setaffinity), the torch profiler's kernel names on all cores (GRU on cuDNN?);
4. per model (--models, default ctc,cnn): the accuracy protocol for --train_seconds at --batch_size with
   --precision, printing its row, with the input-wait fraction of that same run on all cores;
5. GPU utilisation throughout (nvidia-smi, one sample every 0.5 s), split by phase.

Everything goes to $GPU_CHECK_OUT/gpu_check.json and gpu_check.log; a summary with the issue's targets ends the
output. A phase that fails or would overrun --budget_s is recorded and the next one runs. Sizes are flags, so the
CPU rehearsal runs it tiny:

    GPU_CHECK_OUT=/tmp/gc_out python -m tools.gpu_check.run --site=/tmp/gc_site --work=/tmp/gc_work \\
        --train_size=600 --val_size=100 --test_size=100 --train_seconds=20 --batch_size=16 --wait_cores=2,1 \\
        --wait_steps=5 --direct_count=50 --precision=float32 --backends=tensorflow
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

from tools.gpu_check import pieces

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = {"input_wait_fraction_16_cores": 0.05, "ctc_test_captcha_acc": 0.995, "cnn_test_captcha_acc": 0.985,
           "train_minutes_at_most": 5}
ML_DTYPES_RANGE = ((0, 5, 1), (1, 0, 0))  # tensorflow 2.21 needs ml_dtypes>=0.5.1,<1.0


class Log:
    """Prints to stdout and appends to the log file, each line stamped with the seconds since the start."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.started = time.time()

    def __call__(self, text, stream=None):
        for line in str(text).splitlines() or [""]:
            line = "[%6.1fs] %s" % (time.time() - self.started, line)
            print(line, flush=True, file=stream or sys.stdout)
            self.file.write(line + "\n")


class GpuSampler:
    """nvidia-smi's utilisation and memory every 0.5 s in a thread; `phase(name)` marks where each phase starts."""

    def __init__(self, every=0.5):
        self.samples, self.phases, self.error, self.every = [], [], None, every
        self._stop = threading.Event()
        self.smi = shutil.which("nvidia-smi")

    def start(self):
        if not self.smi:
            self.error = "nvidia-smi not found"
            return self
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                out = subprocess.run([self.smi, "--query-gpu=utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                util, memory = out.stdout.strip().splitlines()[0].split(",")
                self.samples.append((time.time(), float(util), float(memory)))
            except Exception as e:  # keep sampling; remember why one failed
                self.error = "%s: %s" % (type(e).__name__, e)

    def phase(self, name):
        self.phases.append((time.time(), name))

    def stop(self):
        self._stop.set()

    def summary(self):
        if not self.samples:
            return {"error": self.error or "no samples"}
        bounds = self.phases + [(float("inf"), None)]
        result = {}
        for (start, name), (end, _) in zip(bounds, bounds[1:]):
            chosen = [s for s in self.samples if start <= s[0] < end]
            if chosen:
                result[name] = {"samples": len(chosen),
                                "util_mean_pct": round(sum(s[1] for s in chosen) / len(chosen), 1),
                                "util_max_pct": max(s[1] for s in chosen),
                                "memory_max_mib": max(s[2] for s in chosen)}
        return result


def gpu_info():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def version_tuple(text):
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (3 - len(parts)))


def host_versions(python, env):
    """Versions of what the check imports, as the host's python sees them with `env` (PYTHONPATH)."""
    code = ("import importlib, json, sys\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for m in ('numpy', 'ml_dtypes', 'google.protobuf', 'h5py', 'PIL', 'torch', 'jax', 'keras', "
            "'tensorflow', 'captcha', 'optree', 'absl', 'apache_beam'):\n"
            "    try:\n"
            "        mod = importlib.import_module(m); out[m] = getattr(mod, '__version__', '?')\n"
            "        out[m + '_file'] = getattr(mod, '__file__', None)\n"
            "    except Exception as e:\n"
            "        out[m] = None; out[m + '_error'] = '%s: %s' % (type(e).__name__, str(e)[:200])\n"
            "print(json.dumps(out))\n")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (out.stderr or out.stdout)[-2000:]}


def numpy_versions(python):
    """{'numpy': ..., 'ml_dtypes': ...} of the host's own packages (None where missing)."""
    code = ("import json\nout = {}\nfor m in ('numpy', 'ml_dtypes'):\n    try:\n"
            "        out[m] = __import__(m).__version__\n    except Exception:\n        out[m] = None\n"
            "print(json.dumps(out))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    return json.loads(out.stdout.strip().splitlines()[-1])


def install(args, log):
    """Reassembles the pieces and installs them into args.site; returns what it did."""
    manifest = pieces.load_manifest(args.pieces_dir)
    state = pieces.status(args.pieces_dir)
    if state["missing"]:
        raise pieces.PieceError("pieces missing on this machine: %s of %d (present: %s); carry them first, see "
                                "docs/gpu-check.md" % (", ".join(state["missing"]), state["total"],
                                                       ", ".join(state["present"]) or "none"))
    marker = os.path.join(args.site, ".gpu_check_manifest.json")
    digest = json.dumps(manifest, sort_keys=True)
    started = time.perf_counter()
    if os.path.isfile(marker) and open(marker).read() == digest:
        log("install: %s already holds this manifest's wheels" % args.site)
        return {"skipped": True}
    wheel_dir = os.path.join(args.scratch, "wheels")
    shutil.rmtree(wheel_dir, ignore_errors=True)
    paths = pieces.reassemble(args.pieces_dir, wheel_dir)  # every group: each piece is checked
    log("install: %d wheels reassembled and verified (sha256 of every piece and wheel) in %.1f s" % (
        len(paths), time.perf_counter() - started))
    numpy_ml = numpy_versions(sys.executable)
    groups = {"always"}
    ml = numpy_ml.get("ml_dtypes")
    if not ml or not (ML_DTYPES_RANGE[0] <= version_tuple(ml) < ML_DTYPES_RANGE[1]):
        groups.add("ml_dtypes_fallback")
        log("install: the host's ml_dtypes is %s, outside tensorflow 2.21's >=0.5.1,<1.0: installing the carried "
            "ml_dtypes" % ml)
    numpy = numpy_ml.get("numpy")
    if not numpy or version_tuple(numpy) < (1, 26, 0):
        raise pieces.PieceError("the host's numpy is %s; tensorflow 2.21 needs >=1.26 and none is carried" % numpy)
    chosen = {e["file"] for e in manifest["files"] if e["group"] in groups}
    paths = [p for p in paths if os.path.basename(p) in chosen]
    shutil.rmtree(args.site, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--target", args.site] + sorted(paths)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError("pip install failed: %s" % (out.stderr or out.stdout)[-1500:])
    shutil.rmtree(wheel_dir, ignore_errors=True)
    with open(marker, "w") as f:
        f.write(digest)
    seconds = time.perf_counter() - started
    log("install: into %s in %.1f s (groups %s)" % (args.site, seconds, sorted(groups)))
    return {"skipped": False, "wheels": [os.path.basename(p) for p in paths], "seconds": round(seconds, 1),
            "groups": sorted(groups), "host_before": numpy_ml}


def child_env(args, backend):
    path = [REPO, args.site] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), KERAS_BACKEND=backend, PYTHONUNBUFFERED="1",
                TF_CPP_MIN_LOG_LEVEL="2")


def run_child(cmd, env, log, timeout, cores=None):
    """Runs `cmd`, its output streamed into the log, killed after `timeout` seconds; returns (exit status or
    'timeout', seconds, output lines)."""
    preexec = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    started = time.perf_counter()
    log("$ %s%s" % ("[%d cores] " % len(cores) if cores else "", " ".join(cmd)))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            preexec_fn=preexec, start_new_session=True)
    killed = []

    def kill():
        killed.append(True)
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass

    timer = threading.Timer(max(1.0, timeout), kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if "\r" in line:  # progress bars: keep the last state
                line = line.rsplit("\r", 1)[-1]
            lines.append(line)
            log("  " + line)
        status = proc.wait()
    finally:
        timer.cancel()
    if killed:
        log("  (killed after %.0f s: over its share of --budget_s)" % timeout)
    return ("timeout" if killed else status), round(time.perf_counter() - started, 1), lines


def remove(path):
    if os.path.exists(path):
        os.remove(path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cores_list(text, available):
    out = []
    for n in (int(x) for x in text.split(",") if x.strip()):
        if n <= len(available):
            out.append(sorted(available)[:n])
    return out


def check(args, log, result, sampler):
    """The phases after install; fills `result`."""
    deadline = log.started + args.budget_s
    left = lambda: deadline - time.time()
    available = sorted(os.sched_getaffinity(0))
    data_dir = os.path.join(args.scratch, "data")

    sampler.phase("render")
    sizes = ["--train_size=%d" % args.train_size, "--val_size=%d" % args.val_size, "--test_size=%d" % args.test_size]
    shutil.rmtree(data_dir, ignore_errors=True)
    env = child_env(args, "tensorflow")
    status, seconds, lines = run_child(
        [sys.executable, "-m", "tools.gpu_check.render", "--out_dir=" + data_dir] + sizes, env, log,
        min(left() - 60, args.render_timeout_s))
    render = {"status": status, "wall_s": seconds,
              "how": "tools.gpu_check.render: the project's renderer (pipeline.render + pipeline.records) in a "
                     "process pool; apache-beam is not carried, so not pipeline.main"}
    printed = [line for line in lines if line.startswith("{") and '"records_per_s"' in line]
    if printed:
        render.update(json.loads(printed[-1]))
    result["render"] = render
    if status != 0:
        raise RuntimeError("rendering failed (%s); see the log" % status)

    for backend in args.backends.split(","):
        env = child_env(args, backend)
        per = result["backends"].setdefault(backend, {"input_wait": [], "protocol": {}})
        for cores in cores_list(args.wait_cores, available):
            if left() < args.reserve_s + 30:
                per["input_wait"].append({"cores": len(cores), "skipped": "out of time"})
                continue
            sampler.phase("%s/wait/%s/%d_cores" % (backend, args.wait_model, len(cores)))
            out_json = os.path.join(args.scratch, "wait_%s_%d.json" % (backend, len(cores)))
            profile = args.profile_steps if len(cores) == len(available) and backend == "torch" else 0
            cmd = [sys.executable, "-m", "tools.gpu_check.train_one", "--mode=wait", "--model=" + args.wait_model,
                   "--data_dir=" + data_dir, "--model_dir=" + os.path.join(args.scratch, "wait"),
                   "--out_json=" + out_json, "--batch_size=%d" % args.batch_size, "--precision=" + args.precision,
                   "--steps=%d" % args.wait_steps, "--warmup_steps=%d" % args.wait_warmup_steps,
                   "--profile_steps=%d" % profile]
            remove(out_json)
            status, seconds, _ = run_child(cmd, env, log, min(args.wait_timeout_s, left() - args.reserve_s), cores)
            entry = read_json(out_json)  # a fit killed while profiling has written its wait result
            per["input_wait"].append(dict(entry or {}, cores=len(cores), status=status, wall_s=seconds))
        models = [m for m in args.models.split(",") if m]
        for i, model in enumerate(models):
            # Share what is left between this model and the ones after it.
            share = (left() - args.reserve_s) / (len(models) - i)
            train_seconds = min(args.train_seconds, share - args.protocol_overhead_s)
            if train_seconds < args.min_train_seconds:
                per["protocol"][model] = {"skipped": "out of time: %.0f s left" % left()}
                log("%s/%s: skipped, %.0f s left" % (backend, model, left()))
                continue
            sampler.phase("%s/protocol/%s" % (backend, model))
            out_json = os.path.join(args.scratch, "protocol_%s_%s.json" % (backend, model))
            cmd = [sys.executable, "-m", "tools.gpu_check.train_one", "--mode=protocol", "--model=" + model,
                   "--data_dir=" + data_dir, "--model_dir=" + os.path.join(args.scratch, "runs", backend, model),
                   "--out_json=" + out_json, "--batch_size=%d" % args.batch_size, "--precision=" + args.precision,
                   "--train_seconds=%.0f" % train_seconds, "--steps_per_epoch=%d" % args.steps_per_epoch,
                   "--direct_count=%d" % args.direct_count] + args.trainer_flag
            remove(out_json)
            # Its share plus a minute's slack, so an underestimated overhead does not starve the next model.
            status, seconds, _ = run_child(cmd, env, log, max(30.0, min(left() - args.reserve_s / 2, share + 60)))
            entry = read_json(out_json) if status == 0 else None
            per["protocol"][model] = dict(entry or {}, status=status, wall_s=seconds,
                                          train_seconds_asked=round(train_seconds))


def summary(result):
    """The lines the check ends with: each measurement against the issue's target."""
    lines = ["GPU check on %s, %s" % (result.get("gpu") or "no GPU", result["finished"])]
    render = result.get("render", {})
    lines.append("render: %s records in %s s (%s records/s, %s workers; %s)" % (
        render.get("records"), render.get("seconds"), render.get("records_per_s"), render.get("workers"),
        "project renderer, no Beam"))
    for backend, per in result["backends"].items():
        for w in per["input_wait"]:
            iw = w.get("input_wait") or {}
            frac = iw.get("wait_fraction")
            lines.append("%s input wait, %s, %s cores: %s of step time, %s images/s%s%s" % (
                backend, w.get("model", "?"), w["cores"], "%.1f%%" % (100 * frac) if frac is not None else "n/a",
                iw.get("images_per_s"), " (status %s)" % w.get("status") if w.get("status") not in (0, None) else "",
                " [%s]" % w["skipped"] if w.get("skipped") else ""))
            kernels = w.get("kernels")
            if kernels:
                lines.append("%s GRU on cuDNN: %s (cudnn ops %s; rnn kernels %s)" % (
                    backend, kernels.get("gru_on_cudnn"), [o["name"] for o in kernels.get("cudnn_rnn_ops", [])],
                    [k["name"][:60] for k in kernels.get("rnn_kernels", [])[:3]] or kernels.get("error") or "none"))
        for model, p in per["protocol"].items():
            if "row" not in p:
                lines.append("%s %s: no row (%s)" % (backend, model, p.get("skipped") or "status %s" % p.get("status")))
                continue
            row, iw = p["row"], p.get("input_wait", {})
            target = TARGETS.get("%s_test_captcha_acc" % model)
            lines.append("%s %s: test %.2f%%, direct %.2f%%, %.0f train images/s, %.1f train min, input wait %s, "
                         "GPU util %s%s" % (
                             backend, model, 100 * row["test_captcha_acc"], 100 * row["direct_captcha_acc"],
                             row["train_images_per_s"] or 0, row["train_minutes"] or 0,
                             "%.1f%%" % (100 * iw["wait_fraction"]) if iw.get("wait_fraction") is not None else "n/a",
                             (p.get("gpu_util_training") or {}).get("mean_pct", "n/a"),
                             " (target >= %.1f%%: %s)" % (100 * target, "met" if row["test_captcha_acc"] >= target
                                                          else "not met") if target else ""))
            lines.append("  " + p["markdown"])
    return lines


def build_parser() -> argparse.ArgumentParser:
    """This command's flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--status", action="store_true", help="print which piece folders are here, and exit")
    parser.add_argument("--pieces_dir", default=os.path.join(REPO, ".gpu_wheels"))
    parser.add_argument("--site", default="/tmp/gpu_check_site", help="pip --target, outside the checkout")
    parser.add_argument("--skip_install", action="store_true",
                        help="use this Python's own packages, no pieces (a rehearsal in the project's .venv)")
    parser.add_argument("--work", dest="scratch", default="/tmp/gpu_check", help="dataset and runs")
    parser.add_argument("--out", default=os.environ.get("GPU_CHECK_OUT"), help="default: $GPU_CHECK_OUT")
    parser.add_argument("--budget_s", type=float, default=450, help="the whole check, install included")
    parser.add_argument("--reserve_s", type=float, default=15, help="kept for writing the results")
    parser.add_argument("--train_size", type=int, default=200_000)
    parser.add_argument("--val_size", type=int, default=2_000)
    parser.add_argument("--test_size", type=int, default=10_000)
    parser.add_argument("--render_timeout_s", type=float, default=90)
    parser.add_argument("--backends", default="torch", help="comma-separated KERAS_BACKENDs: torch, jax")
    parser.add_argument("--models", default="ctc,cnn")
    parser.add_argument("--train_seconds", type=float, default=100, help="per model; shrunk to fit --budget_s")
    parser.add_argument("--min_train_seconds", type=float, default=20)
    parser.add_argument("--protocol_overhead_s", type=float, default=45,
                        help="start, validation, export, test and direct evaluation around the training")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--steps_per_epoch", type=int, default=200)
    parser.add_argument("--direct_count", type=int, default=2000)
    parser.add_argument("--trainer_flag", action="append", default=[],
                        help="extra train_one flag, e.g. --trainer_flag=--learning_rate=0.002")
    parser.add_argument("--wait_model", default="ctc")
    parser.add_argument("--wait_cores", default="16,4,2", help="core counts for the input-wait fits")
    parser.add_argument("--wait_steps", type=int, default=60)
    parser.add_argument("--wait_timeout_s", type=float, default=45)
    parser.add_argument("--wait_warmup_steps", type=int, default=10, help="run before the measured steps")
    parser.add_argument("--profile_steps", type=int, default=5)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.status:
        try:
            state = pieces.status(args.pieces_dir)
        except pieces.PieceError as e:
            print("pieces: none here (%s)" % e)
            return 0
        print("pieces present: %s; missing: %s (of %d)" % (" ".join(state["present"]) or "none",
                                                           " ".join(state["missing"]) or "none", state["total"]))
        return 0
    if not args.out:
        print("error: set GPU_CHECK_OUT (or --out) to the folder for gpu_check.json and gpu_check.log",
              file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.scratch, exist_ok=True)
    log = Log(os.path.join(args.out, "gpu_check.log"))
    result = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), "cpus": len(os.sched_getaffinity(0)), "gpu": gpu_info(),
              "argv": sys.argv[1:], "targets": TARGETS, "backends": {}}
    sampler = GpuSampler().start()
    sampler.phase("install")
    status = 0
    try:
        try:
            result["install"] = {"skipped": "--skip_install"} if args.skip_install else install(args, log)
        except pieces.PieceError as e:
            log("error: %s" % e, sys.stderr)
            result["error"] = str(e)
            return 1
        result["versions"] = host_versions(sys.executable, child_env(args, args.backends.split(",")[0]))
        log("versions: " + json.dumps({k: v for k, v in result["versions"].items() if not k.endswith("_file")}))
        check(args, log, result, sampler)
    except Exception as e:  # record what broke; the JSON is still written
        log("error: %s: %s" % (type(e).__name__, e), sys.stderr)
        result["error"] = "%s: %s" % (type(e).__name__, e)
        status = 1
    finally:
        sampler.stop()
        result["gpu_util"] = sampler.summary()
        result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        result["wall_s"] = round(time.time() - log.started, 1)
        with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
            json.dump(result, f, indent=2, default=str)
        if "error" not in result or status:
            for line in summary(result):
                log(line)
        log("wrote %s (%.0f s in all)" % (os.path.join(args.out, "gpu_check.json"), result["wall_s"]))
    return status


if __name__ == "__main__":
    sys.exit(main())
