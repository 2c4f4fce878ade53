"""Shared data for the serving tests: copies of the trainer fixtures' tiny runs with their ONNX reader exported."""
import os
import shutil

import pytest
from trainer_fixtures import once_per_run, trained  # noqa: F401 (fixture)

from trainer import onnx_export


@pytest.fixture(scope="session")
def onnx_runs(trained, tmp_path_factory):  # noqa: F811
    """model name -> (model_dir holding reader.onnx and reader.json, data_dir), for cnn and ctc: copies of the
    `trained` runs, so that the files the export adds meet no other test."""
    runs = once_per_run(tmp_path_factory, "onnx_runs", lambda folder: _export_copies(folder, trained))
    return {name: tuple(run) for name, run in runs.items()}


def _export_copies(folder, trained):  # noqa: F811
    result = {}
    for name, (model_dir, data_dir) in trained.items():
        copy = str(folder / name)
        shutil.copytree(model_dir, copy)
        onnx_export.export_onnx_run(copy)
        assert os.path.exists(os.path.join(copy, onnx_export.ONNX_FILE))
        result[name] = (copy, data_dir)
    return result
