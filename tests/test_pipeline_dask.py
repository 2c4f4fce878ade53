"""Beam's DaskRunner on a 2-worker Dask LocalCluster: the same bytes as the local runner, both sources.

    .venv/bin/python -m pytest tests/test_pipeline_dask.py -q
"""
import json
import os
import sys

import pytest
from captcha.image import ImageCaptcha
from dask import distributed

from pipeline import main as pipeline_main
from pipeline import runners, sweep

ARGS = ["--train_size=60", "--val_size=20", "--test_size=20", "--num_shards=3", "--seed=5",
        "--min_length=4", "--max_length=5"]
LOCAL = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local_cluster:
        yield local_cluster


def _on_dask(cluster):
    return ["--runner=dask", "--dask_client_address=%s" % cluster.scheduler_address]


def _outputs(folder):
    """{file: bytes} of the shards and rejected.csv, and the spec without its creation time."""
    files = {f: (folder / f).read_bytes() for f in os.listdir(folder) if ".tfrecord-" in f or f == "rejected.csv"}
    spec = json.loads((folder / "spec.json").read_text())
    spec.pop("created")
    return files, spec


def test_dask_writes_the_local_runners_bytes(cluster, tmp_path):
    pipeline_main.run(["--output_dir=%s" % (tmp_path / "local"), *ARGS, *LOCAL])
    spec = pipeline_main.run(["--output_dir=%s" % (tmp_path / "dask"), *ARGS, *_on_dask(cluster)])
    assert sum(s["num_records"] for s in spec["splits"].values()) == 100
    files, spec = _outputs(tmp_path / "dask")
    assert len(files) == 9 and (files, spec) == _outputs(tmp_path / "local")


def test_images_source_runs_on_dask(cluster, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    generator = ImageCaptcha(width=100, height=40)
    for i in range(16):
        generator.generate_image("AB%02d" % i).save(folder / ("AB%02d.png" % i))
    (folder / "CD99.png").write_text("not an image")
    (folder / "AB00.jpg").write_bytes((folder / "AB00.png").read_bytes())
    args = ["--source=images", "--input=%s" % folder, "--val_fraction=0.25", "--test_fraction=0.25"]
    pipeline_main.run(["--output_dir=%s" % (tmp_path / "local"), *args, *LOCAL])
    spec = pipeline_main.run(["--output_dir=%s" % (tmp_path / "dask"), *args, *_on_dask(cluster)])
    assert sum(s["num_records"] for s in spec["splits"].values()) == 16 and spec["num_rejected"] == 2
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "local")


def test_sweep_renders_every_variant_on_dask(cluster, tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("dataset: {base: {train_size: 6, val_size: 2, test_size: 0}, grid: {length: [3, 5]}}")
    index = sweep.run(["--sweep_file=%s" % sweep_file, "--output_root=%s" % tmp_path, *_on_dask(cluster)])
    assert [v["status"] for v in index["variants"]] == ["rendered", "rendered"]
    assert all((tmp_path / v["folder"] / "spec.json").exists() for v in index["variants"])


def test_without_an_address_a_local_cluster_is_started_and_closed(tmp_path):
    spec = pipeline_main.run(["--output_dir=%s" % tmp_path, "--train_size=8", "--val_size=0", "--test_size=0",
                              "--runner=DaskRunner"])
    assert spec["splits"]["train"]["num_records"] == 8


def test_runner_names_and_one_partition_per_shard():
    from apache_beam.runners.dask.dask_runner import DaskOptions
    for name in ("dask", "DaskRunner", runners.DASK_RUNNER):
        options = runners.pipeline_options(["--runner=%s" % name], num_tasks=7)
        assert runners.is_dask(options) and options.view_as(DaskOptions).npartitions == 7
    options = runners.pipeline_options(["--runner=dask", "--dask_partition_size=2"], num_tasks=7)
    assert options.view_as(DaskOptions).npartitions is None and options.view_as(DaskOptions).partition_size == 2


def test_dask_missing_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # `import dask.distributed` now fails
    assert pipeline_main.main(["--output_dir=%s" % tmp_path, "--runner=dask"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --runner=dask needs Dask, which is not installed: pip install -e '.[dask]'")
    assert os.listdir(tmp_path) == []
