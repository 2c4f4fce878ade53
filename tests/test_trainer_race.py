"""trainer.race: the validation race of --model=auto for labels of several lengths."""
import json
import os

import pytest
from trainer_fixtures import variable_dataset  # noqa: F401 (fixture)

from trainer import prepared, race, recipe, rundir, train
from trainer.errors import UserError
from trainer.models import preparation
from trainer.spec import DatasetSpec


def _fake_training(accuracies, trained):
    """A train_fn that writes a log.csv whose best val_captcha_acc is accuracies[model]."""
    def train_fn(config):
        trained.append((config.model, config.time_budget, config.model_dir))
        os.makedirs(config.model_dir, exist_ok=True)
        rows = ["epoch,loss,val_captcha_acc,val_char_acc", "0,9.0,0.0,0.1", f"1,5.0,{accuracies[config.model]},0.5"]
        rundir.write_atomic(os.path.join(config.model_dir, "log.csv"), "\n".join(rows) + "\n")
    return train_fn


@pytest.mark.parametrize("accuracies, winner", [({"ctc_small8": 0.2, "attn_small": 0.6}, "attn_small"),
                                                ({"ctc_small8": 0.0, "attn_small": 0.0}, "ctc_small8")])
def test_the_best_on_val_goes_on_from_its_race_run_for_the_rest_of_the_budget(tmp_path, accuracies, winner):
    config = train.TrainConfig(model="ctc_small8", data_dir="d", model_dir=str(tmp_path / "m"), time_budget=1000,
                               learning_rate=1e-3)
    trained = []
    goes_on = race.run(config, ("ctc_small8", "attn_small"), _fake_training(accuracies, trained))
    assert [(m, t) for m, t, _ in trained] == [("ctc_small8", 100), ("attn_small", 100)]  # race.SHARE each
    assert goes_on.model == winner and goes_on.time_budget == 800 and goes_on.learning_rate == 1e-3
    assert goes_on.init_from == str(tmp_path / "m" / "race" / winner)
    with open(tmp_path / "m" / "race" / "results.json") as f:
        results = json.load(f)
    assert results["winner"] == winner  # ties go to the first candidate
    assert [(r["model"], r["val_captcha_acc"]) for r in results["candidates"]] == list(accuracies.items())


def test_a_race_is_only_for_auto_on_labels_of_several_lengths_under_a_budget(variable_dataset):
    spec = DatasetSpec.load(variable_dataset)
    auto = train.TrainConfig(model="auto", data_dir=variable_dataset, model_dir="m", time_budget=60)
    resolved = recipe.resolve(auto, spec)
    assert recipe.race_candidates(auto, resolved, spec) == (resolved.model, recipe.RACE_OTHER)
    for config in (train.TrainConfig(model="auto", data_dir=variable_dataset, model_dir="m"),  # no budget
                   train.TrainConfig(model="ctc_small", data_dir=variable_dataset, model_dir="m", time_budget=60),
                   train.TrainConfig(model="auto", data_dir=variable_dataset, model_dir="m", time_budget=60,
                                     init_from="runs/other")):
        assert recipe.race_candidates(config, resolved, spec) == ()


def test_a_cropped_race_prepares_the_images_once_out_of_the_whole_budget(variable_dataset, tmp_path,  # noqa: F811
                                                                         monkeypatch):
    made, raced = [], []
    monkeypatch.setattr(prepared, "preparation", lambda *a, **k: made.append(a) or preparation(*a, **k))

    def fake_race(config, candidates, train_fn):  # each race run would ask for the same inputs
        raced.append(config.time_budget)
        again = train.training_inputs(config, DatasetSpec.load(config.data_dir))[0]
        assert again.time_budget == pytest.approx(config.time_budget, abs=0.5)
        raise InterruptedError

    monkeypatch.setattr(race, "run", fake_race)
    monkeypatch.setattr(prepared, "_kept", {})  # none kept by an earlier test in this process
    config = train.TrainConfig(model="auto", data_dir=variable_dataset, model_dir=str(tmp_path / "m"),
                               time_budget=600, crop=True)
    with pytest.raises(InterruptedError):
        train.train_and_evaluate(config)
    assert len(made) == 2 and 0 < raced[0] < 600  # train and val, once, before the race and out of its budget


@pytest.mark.slow  # ~100 s: three trainings and their exports; the race's rule is tested above with fakes
def test_auto_races_then_finishes_the_winner_and_a_rerun_does_not_race_again(variable_dataset, tmp_path):
    model_dir = str(tmp_path / "m")
    config = train.TrainConfig(model="auto", data_dir=variable_dataset, model_dir=model_dir, time_budget=3,
                               batch_size=8, steps_per_epoch=2, seed=0)
    train.train_and_evaluate(config)
    with open(os.path.join(model_dir, "race", "results.json")) as f:
        results = json.load(f)
    assert [r["model"] for r in results["candidates"]] == [recipe.NARROW_MODEL, recipe.RACE_OTHER]
    final = rundir.read_config(model_dir)
    assert final["model"] == results["winner"] and final["init_from"] == os.path.join(model_dir, "race",
                                                                                       results["winner"])
    assert final["time_budget"] == pytest.approx(3 * (1 - 2 * race.SHARE))
    assert rundir.is_finished(model_dir) and all(rundir.is_finished(os.path.join(model_dir, "race", r["model"]))
                                                 for r in results["candidates"])
    raced = {r["model"]: os.path.getmtime(os.path.join(model_dir, "race", r["model"], "best.keras"))
             for r in results["candidates"]}
    with pytest.raises(UserError, match="holds a finished run"):
        train.train_and_evaluate(config)
    assert raced == {name: os.path.getmtime(os.path.join(model_dir, "race", name, "best.keras")) for name in raced}
