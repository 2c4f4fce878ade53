"""Test set-up shared by every module."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import pytest  # noqa: E402 (after the environment it reads)

from trainer import onnx_export  # noqa: E402

EXPORT_IF_AVAILABLE = onnx_export.export_if_available


@pytest.fixture(scope="session", autouse=True)
def no_onnx_after_each_training():
    """The tests' trainings skip the end-of-training ONNX export (3-18 s each on 2 cores); the `onnx_after_training`
    fixture brings it back where a test checks it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "export_if_available", lambda model_dir: None)
        yield


@pytest.fixture
def onnx_after_training(monkeypatch):
    """trainer.onnx_export.export_if_available as it runs outside the tests."""
    monkeypatch.setattr(onnx_export, "export_if_available", EXPORT_IF_AVAILABLE)
