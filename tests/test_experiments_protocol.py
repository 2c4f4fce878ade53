"""The accuracy protocol: captchas rendered by the captcha library directly, and the results row."""
import io
import json
import os

import pytest
from PIL import Image
from trainer_fixtures import fixed_dataset  # noqa: F401 (fixture)

from experiments import protocol, report
from trainer import train
from trainer.errors import UserError
from trainer.spec import DatasetSpec


def test_direct_renders_follow_the_spec_and_the_seed(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    pairs = protocol.render_direct(spec, 6, seed=7)
    assert pairs == protocol.render_direct(spec, 6, seed=7)
    assert pairs != protocol.render_direct(spec, 6, seed=8)
    for png, text in pairs:
        assert Image.open(io.BytesIO(png)).size == (128, 64)
        assert len(text) in spec.label_lengths and set(text) <= set(spec.charset)


@pytest.mark.parametrize("name", ["ctc_fullres"])
def test_measure_writes_a_complete_row(name, fixed_dataset, tmp_path):
    model_dir = str(tmp_path / "model")
    train.train_and_evaluate(train.TrainConfig(model=name, data_dir=fixed_dataset, model_dir=model_dir,
                                               batch_size=8, epochs=1, steps_per_epoch=2))
    row = protocol.measure(model_dir, fixed_dataset, 12.5, 30.0, direct_count=8, timing_seconds=0.2)
    assert set(row) == set(protocol.ROW_KEYS)
    assert row["model"] == name and row["params"] > 0 and row["mmacs"] > 1
    assert 0 <= row["test_captcha_acc"] <= 1 and 0 <= row["direct_captcha_acc"] <= 1
    assert row["predict_images_per_s_b64"] > 0 and row["predict_images_per_s_b1"] > 0
    with open(os.path.join(model_dir, "protocol.json")) as f:
        assert json.load(f)["direct_examples"] == 8
    assert row["train_minutes"] == 30.0
    header, _, line = report.markdown_table([row], protocol.ROW_KEYS).splitlines()
    assert header == "| " + " | ".join(protocol.ROW_KEYS) + " |"
    assert line.startswith("| %s | %.2fM |" % (name, row["params"] / 1e6)) and "| 30.0 |" in line
    assert f"| {100 * row['test_captcha_acc']:.2f}% |" in line


def test_measure_without_a_trained_model_or_captchas_is_a_clear_error(fixed_dataset, tmp_path):
    with pytest.raises(UserError, match=f"^--model_dir {tmp_path / 'missing'} does not exist$"):
        protocol.measure(str(tmp_path / "missing"), fixed_dataset, None, None)
    with pytest.raises(UserError, match=f"^--model_dir {fixed_dataset} holds no trained model"):
        protocol.measure(fixed_dataset, fixed_dataset, None, None)
    with pytest.raises(UserError, match="^--direct_count must be at least 1, got 0$"):
        protocol.measure(fixed_dataset, fixed_dataset, None, None, direct_count=0)
