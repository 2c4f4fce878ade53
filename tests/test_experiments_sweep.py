"""experiments.sweep: a 2-run sweep over pipeline.sweep datasets trains, tabulates, then skips; bad files are named."""
import csv
import hashlib
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from pipeline import sweep as pipeline_sweep
from experiments import sweep
from trainer.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = """
dataset:
  base: {train_size: 8, val_size: 4, test_size: 4, length: 4}
  grid: {seed: [1, 2]}
"""
TWO_RUNS = """
dataset:
  base: {train_size: 8, val_size: 4, test_size: 4, length: 4}
  grid: {seed: [1]}
train:
  base: {epochs: 1, steps_per_epoch: 2, batch_size: 4, seed: 0}
  grid: {model: [ctc, ctc_lite]}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """An output root with two tiny datasets (seed 1 and 2) rendered by pipeline.sweep, and its index.json."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "datasets.yaml").write_text(DATASETS)
    pipeline_sweep.run(["--sweep_file=%s" % (root / "datasets.yaml"), "--output_root=%s" % root,
                        "--direct_num_workers=1"])
    return root


def _write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def _folder(root, seed):
    index = json.loads((root / "index.json").read_text())
    return next(v["folder"] for v in index["variants"] if v["settings"]["seed"] == seed)


def _file_times(folder):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files if not f.endswith(".lock")}  # locks hold pids


def test_sweep_trains_each_run_once_and_tabulates(root, tmp_path):
    sweep_file = _write(tmp_path, TWO_RUNS)
    summary = sweep.run_sweep(sweep_file, str(root))
    folder = _folder(root, 1)
    assert [os.path.relpath(d, root).split(os.sep)[:2] for d in summary["trained"]] == [["runs", folder]] * 2
    assert [os.path.basename(d).rsplit("-", 1)[0] for d in summary["trained"]] == ["model-ctc", "model-ctc_lite"]
    assert summary["skipped"] == []

    with open(root / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["model"]) for r in rows] == [("1", "ctc"), ("1", "ctc_lite")]
    for row, model_dir in zip(rows, summary["trained"]):
        assert row["model_dir"] == os.path.relpath(model_dir, root)
        for split in ("val", "test"):
            evaluated = json.loads((root / row["model_dir"] / f"eval_{split}.json").read_text())
            assert evaluated["num_examples"] == 4
            assert float(row[f"{split}_captcha_acc"]) == evaluated["captcha_acc"]  # results.csv keeps full values
            assert float(row[f"{split}_char_acc"]) == evaluated["char_acc"]
        assert float(row["train_images_per_s"]) > 0 and float(row["train_minutes"]) > 0
        result = json.loads((root / row["model_dir"] / "result.json").read_text())
        assert result["config"]["data_dir"] == os.path.join(str(root), folder) and result["epochs_run"] == 1
    assert int(rows[0]["params"]) > 0 and rows[0]["params"] != rows[1]["params"]  # two different architectures
    for row in rows:  # each run's settings and results in its TensorBoard folder, for the HParams tab
        events = EventAccumulator(str(root / row["model_dir"] / "tensorboard"), size_guidance={"tensors": 0})
        events.Reload()
        session = plugin_data_pb2.HParamsPluginData.FromString(
            events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content).session_start_info
        assert session.hparams["model"].string_value == row["model"]
        assert session.hparams["dataset.seed"].number_value == 1
        assert tf.make_ndarray(events.Tensors("test_captcha_acc")[0].tensor_proto) == pytest.approx(
            float(row["test_captcha_acc"]))

    table = (root / "results.md").read_text()
    assert table == summary["table"]
    lines = table.splitlines()
    assert lines[0] == ("| seed | model | val_captcha_acc | test_captcha_acc | val_char_acc | test_char_acc "
                        "| params | train_images_per_s | train_minutes |")
    assert len(lines) == 4 and lines[2].startswith("| 1 | ctc | ") and lines[3].startswith("| 1 | ctc_lite | ")
    assert (root / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs_before = _file_times(root / "runs")
    again = subprocess.run([sys.executable, "-m", "experiments.sweep", "--sweep_file=" + sweep_file,
                            "--output_root=%s" % root], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout == table
    assert _file_times(root / "runs") == runs_before, "finished runs are not trained again"


def test_plan_crosses_datasets_with_train_variants_and_shards_disjointly(root, tmp_path):
    text = DATASETS + "train:\n  base: {model: cnn, epochs: 1}\n  grid: {learning_rate: [1e-3, 0.01]}\n"
    runs = sweep.plan_runs(sweep.load_sweep(_write(tmp_path, text)), str(root))
    expected = [(folder, lr) for folder in (_folder(root, 1), _folder(root, 2)) for lr in (0.001, 0.01)]
    assert [(r.dataset_folder, r.config.learning_rate) for r in runs] == expected  # YAML's 1e-3 string -> 0.001
    for run in runs:
        assert run.train_name.startswith("learning_rate-%s-" % run.config.learning_rate)
        assert run.config.model_dir == os.path.join(str(root), "runs", run.dataset_folder, run.train_name)
        assert run.config.data_dir == os.path.join(str(root), run.dataset_folder)
        assert (run.config.model, run.config.epochs) == ("cnn", 1)

    ids = [r.config.model_dir for r in runs]
    for num_shards in (1, 2, 3, 5):
        shards = [[r.config.model_dir for r in sweep.shard_runs(runs, i, num_shards)] for i in range(num_shards)]
        assert sorted(sum(shards, [])) == sorted(ids)  # each run in exactly one shard
    assert [r.config.model_dir for r in sweep.shard_runs(runs, 0, 3)] == [ids[0], ids[3]]
    assert [r.config.model_dir for r in sweep.shard_runs(runs, 1, 3)] == [ids[1]]
    with pytest.raises(UserError, match="shard_index"):
        sweep.shard_runs(runs, 2, 2)

    other_base = sweep.plan_runs(sweep.load_sweep(_write(tmp_path, text.replace("epochs: 1", "epochs: 2"))),
                                 str(root))
    assert [r.train_name.rsplit("-", 1)[0] for r in other_base] == [r.train_name.rsplit("-", 1)[0] for r in runs]
    assert not {r.config.model_dir for r in other_base} & {r.config.model_dir for r in runs}, \
        "a run with other base settings gets its own folder, never another's result.json"


DATASET = "dataset: {base: {train_size: 8, val_size: 4, test_size: 4, length: 4}, grid: {seed: [1]}}\n"


@pytest.mark.parametrize("text, message", [
    (DATASET + "train: {grid: {modle: [cnn]}}", "unknown key 'modle' in train.grid"),
    (DATASET + "train: {base: {data_dir: x}, grid: {model: [cnn]}}", "unknown key 'data_dir' in train.base"),
    (DATASET + "train: {base: {model: cnn}, grid: {}}", "train.grid is empty"),
    (DATASET + "train: {grid: {model: cnn}}", "train.grid.model must be a non-empty list"),
    (DATASET + "train: {grid: {model: [cnn, rnn]}}", "train variant model-rnn: unknown model 'rnn'"),
    (DATASET + "train: {base: {model: cnn}, grid: {learning_rate: [0.001, -1]}}",
     "learning_rate must be positive, got -1"),
    (DATASET + "train: {base: {model: cnn}, grid: {batch_size: [eight]}}",
     "train setting batch_size: expected int, got 'eight'"),
    (DATASET + "train: {grid: {epochs: [1]}}", "needs 'model' in base or grid"),
    (DATASET + "train: {grid: {model: [cnn, cnn]}}", "gives the run .*model-cnn-.* twice"),
    (DATASET, "needs a 'train' section"),
    (DATASET.replace("seed: [1]", "seed: [1, 3]") + "train: {grid: {model: [cnn]}}",
     r"dataset variant .*'seed': 3.* is not in .*index.json: render them first with `python -m pipeline.sweep`"),
    ("[1, 2]", "must hold a mapping"),
])
def test_bad_sweep_file_names_the_key(root, tmp_path, text, message):
    runs_before = _file_times(root)
    with pytest.raises(UserError, match=message):
        sweep.run_sweep(_write(tmp_path, text), str(root))
    assert _file_times(root) == runs_before, "nothing is written before the sweep file is checked"


def test_missing_index_says_to_run_the_pipeline_sweep(tmp_path):
    with pytest.raises(UserError, match="index.json not found: render them first with `python -m pipeline.sweep`"):
        sweep.run_sweep(_write(tmp_path, DATASET + "train: {grid: {model: [cnn]}}"), str(tmp_path / "empty"))


def test_run_folder_names_do_not_depend_on_overwrite_or_on_new_defaults():
    """--overwrite is how a run starts, not what it trains: not a sweep key, not in the folder name's hash; nor are
    settings at their default, so a TrainConfig field added later renames no run folder."""
    text = "train: {base: {model: cnn, epochs: 1}, grid: {learning_rate: [0.001]}}"
    given = json.dumps({"epochs": 1, "learning_rate": 0.001, "model": "cnn"}, sort_keys=True)
    digest = hashlib.sha256(given.encode()).hexdigest()[:8]
    assert [name for name, _, _ in sweep.train_variants(yaml.safe_load(text))] == [f"learning_rate-0.001-{digest}"]
    with pytest.raises(UserError, match="unknown key 'overwrite' in train.base"):
        sweep.train_variants(yaml.safe_load(text.replace("epochs: 1", "overwrite: true")))


def test_finished_training_without_a_result_is_trained_again_from_scratch(root, tmp_path, monkeypatch):
    """A run killed after training but before result.json: its model_dir holds a finished run, which trainer.main
    refuses; the sweep starts it over (--overwrite) instead of stopping."""
    sweep_file = _write(tmp_path, DATASET + "train: {base: {epochs: 1}, grid: {model: [cnn]}}")
    (run,) = sweep.plan_runs(sweep.load_sweep(sweep_file), str(root))
    os.makedirs(run.config.model_dir)
    open(os.path.join(run.config.model_dir, "best.keras"), "w").close()  # and saved_model/, no backup/: finished
    os.makedirs(os.path.join(run.config.model_dir, "saved_model"))
    started = []

    def fake_train(config, extra_callbacks=()):
        started.append(config)
        raise UserError("stop here")

    monkeypatch.setattr(sweep.train, "train_and_evaluate", fake_train)
    with pytest.raises(UserError, match="stop here"):
        sweep.run_sweep(sweep_file, str(root))
    assert [(c.model_dir, c.overwrite) for c in started] == [(run.config.model_dir, True)]


def test_sweep_file_that_is_not_text_is_a_clear_error(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match=f"--sweep_file {path} is not valid YAML/JSON: "):
        sweep.load_sweep(str(path))
    path.write_text("train: {base: [1,\n")
    with pytest.raises(UserError, match=f"--sweep_file {path} is not valid YAML/JSON: ") as e:
        sweep.load_sweep(str(path))
    assert "\n" not in str(e.value)
