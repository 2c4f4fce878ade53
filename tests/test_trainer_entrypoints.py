"""Every trainer entry point turns bad input into exit status 1 and one `error: <message>` line, no traceback."""
import os
import subprocess
import sys

import pytest
from trainer_fixtures import fixed_dataset  # noqa: F401 (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module, args, message", [
    ("experiments.benchmark", ["--data_dir={missing}", "--models=cnn,rnn"], "--models: unknown model 'rnn'"),
    ("experiments.protocol", ["--notrain", "--model=cnn", "--data_dir={data}", "--model_dir={missing}"],
     "--model_dir {missing} does not exist"),
    ("trainer.export", ["--model_dir={missing}"], "--model_dir {missing} does not exist"),
])
def test_bad_input_is_one_error_line(fixed_dataset, tmp_path, module, args, message):
    missing = tmp_path / "missing"
    args = [a.format(missing=missing, data=fixed_dataset) for a in args]
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: " + message.format(missing=missing))
