"""experiments.pretrain_sweep: readers planned from a sweep file's render variants, refused before training when a
variant cannot fine-tune on the real set; (slow) a tiny sweep trains, tabulates, then reuses its results."""
import json

import pytest

from experiments import pretrain_sweep
from pipeline import sweep as pipeline_sweep
from pipeline.main import run as run_pipeline
from trainer import recipe
from trainer.errors import UserError

VARIANTS = """
dataset:
  base: {charset: digits, length: 4, width: 96, height: 32, font_sizes: [22, 26], train_size: 16, val_size: 8,
         test_size: 0}
  grid: {seed: [1, 2]}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """An output root with two render variants (digits, 96x32) and a stand-in "real" set of another seed."""
    root = tmp_path_factory.mktemp("pretrain")
    (root / "variants.yaml").write_text(VARIANTS)
    pipeline_sweep.run([f"--sweep_file={root / 'variants.yaml'}", f"--output_root={root}", "--direct_num_workers=1"])
    run_pipeline([f"--output_dir={root / 'real'}", "--charset=digits", "--width=96", "--height=32",
                  "--font_sizes=22,26", "--train_size=16", "--val_size=8", "--test_size=8", "--seed=9",
                  "--direct_num_workers=1"])
    return root


def _plan(root, sweep_text=VARIANTS, steps=(100, 200), seeds=(0, 1), real="real"):
    path = root / "plan.yaml"
    path.write_text(sweep_text)
    return pretrain_sweep.plan_readers(str(path), str(root), str(root / real), *steps, list(seeds))


def test_readers_pretrain_on_each_variant_and_fine_tune_for_the_real_only_budget(root):
    runs_root, readers = _plan(root)
    assert [(r.variant == pretrain_sweep.REAL_ONLY, r.seed) for r in readers] == \
        [(True, 0), (False, 0), (False, 0), (True, 1), (False, 1), (False, 1)]
    real_only, variant = readers[0], readers[1]
    assert real_only.pretrain is None and real_only.final.epochs * real_only.final.steps_per_epoch == 300
    assert real_only.final.data_dir == str(root / "real") and real_only.final.model == "auto"
    assert variant.pretrain.epochs == 1 and variant.final.epochs == 2 and variant.settings["seed"] == 1
    assert variant.final.init_from == variant.pretrain.model_dir and variant.final.data_dir == str(root / "real")
    assert variant.pretrain.data_dir == str(root / variant.variant)
    assert len({r.final.model_dir for r in readers}) == len(readers)
    assert all(r.final.model_dir.startswith(runs_root) for r in readers)
    assert runs_root.endswith("/attn_small-100+200")  # the reader --model=auto picks, and the step budgets
    assert _plan(root, steps=(200, 100))[0].endswith("/attn_small-200+100")


@pytest.mark.parametrize("sweep_text, steps, seeds, message", [
    (VARIANTS + "train:\n  base: {model: ctc}\n  grid: {seed: [0]}\n", (100, 100), (0,), "train section"),
    (VARIANTS, (150, 100), (0,), "multiples of 100"),
    (VARIANTS, (100, 0), (0,), "multiples of 100"),
    (VARIANTS, (100, 100), (), "--seeds is empty"),
    (VARIANTS.replace("seed: [1, 2]", "seed: [3]"), (100, 100), (0,), "not in .*index.json"),
])
def test_bad_plans_are_refused_before_training(root, sweep_text, steps, seeds, message):
    with pytest.raises(UserError, match=message):
        _plan(root, sweep_text, steps, seeds)


def test_a_variant_with_another_charset_is_refused(root):
    run_pipeline([f"--output_dir={root / 'real_hex'}", "--charset=hex", "--width=96", "--height=32",
                  "--font_sizes=22,26", "--train_size=4", "--val_size=4", "--test_size=4", "--direct_num_workers=1"])
    with pytest.raises(UserError, match="render with --charset=0123456789ABCDEF"):
        _plan(root, real="real_hex")


def test_a_variant_whose_reader_would_not_fit_the_real_set_is_refused(root, monkeypatch):
    run_pipeline([f"--output_dir={root / 'real_wide'}", "--charset=digits", "--width=160", "--height=32",
                  "--font_sizes=22,26", "--train_size=4", "--val_size=4", "--test_size=4", "--direct_num_workers=1"])
    _plan(root, real="real_wide")  # the reader --model=auto picks (attn_small) carries to any width
    monkeypatch.setattr(recipe, "ONE_LENGTH_MODEL", "cnn")  # cnn's heads depend on the input width
    with pytest.raises(UserError, match="the cnn reader pre-trained on render variant .* would not fit"):
        _plan(root, real="real_wide")


@pytest.mark.slow
def test_a_tiny_sweep_trains_tabulates_and_reuses_its_results(root, monkeypatch):
    monkeypatch.setattr(pretrain_sweep, "STEPS_PER_EPOCH", 1)  # 2 + 2 steps, not hundreds
    path = root / "one.yaml"
    path.write_text(VARIANTS.replace("seed: [1, 2]", "seed: [1]"))
    args = (str(path), str(root), str(root / "real"), 2, 2, [0])
    every, means = pretrain_sweep.run_pretrain_sweep(*args)
    assert every.count("\n") == 2 + 2 and means.count("\n") == 2 + 2  # header, rule, real_only, one variant
    runs_root, readers = pretrain_sweep.plan_readers(*args)
    results = json.loads(open(f"{runs_root}/results.json").read())
    assert [r["variant"] for r in results] == [pretrain_sweep.REAL_ONLY, readers[1].variant]
    assert results[0]["pretrain_val_captcha_acc"] is None and results[1]["pretrain_val_captcha_acc"] is not None
    assert results[0]["steps"] == 4 and results[1]["pretrain_steps"] == 2 and results[1]["steps"] == 2
    monkeypatch.setattr(pretrain_sweep, "train_reader", lambda reader: pytest.fail("trained again"))
    assert pretrain_sweep.run_pretrain_sweep(*args) == (every, means)
