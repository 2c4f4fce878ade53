"""experiments.real_benchmark on a tiny folder of 'real' sets made here (the shared real sets are never used in
tests)."""
import csv
import json
import os
import random

import pytest
from captcha.image import ImageCaptcha

from experiments import plots, real_benchmark
from trainer.errors import UserError
from trainer.spec import DatasetSpec


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """Two sets: `named/` labels in file names (upper case, label_LABEL_id.png), `listed/sub` a labels.csv."""
    root = tmp_path_factory.mktemp("real")
    random.seed(0)  # captcha 0.7.0 draws from `random`: the same bytes, so the same content-hash split, every run
    generator = ImageCaptcha(width=96, height=36)
    named, listed = root / "named", root / "listed" / "sub"
    named.mkdir()
    listed.mkdir(parents=True)
    rows = ["path,label"]
    for i in range(40):
        text = "".join("AB12"[(i * 7 + k * 3) % 4] for k in range(4))
        generator.generate_image(text).save(named / f"{text}_{i:03d}.png")
        generator.generate_image(text[::-1]).save(listed / f"{i}.jpg")
        rows.append(f"{i}.jpg,{text[::-1]}")
    (listed / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "README.md").write_text("not a set")
    return str(root)


def test_finds_every_folder_of_images_and_its_labels(real_root):
    sets = real_benchmark.find_sets(real_root)
    assert list(sets) == ["listed/sub", "named"]
    assert sets["listed/sub"] == [f"--input={os.path.join(real_root, 'listed', 'sub', 'labels.csv')}"]
    assert sets["named"] == [f"--input={os.path.join(real_root, 'named')}"]
    assert list(real_benchmark.find_sets(os.path.join(real_root, "listed"))) == ["sub"]


def test_a_folder_without_sets_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        real_benchmark.find_sets(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="holds no folder of images"):
        real_benchmark.find_sets(str(tmp_path))


def test_disputed_labels_are_those_both_readers_read_alike_against_the_label():
    labels, ours, theirs = ["ab12", "ba21", "1111", "2222"], ["ab12", "ba22", "1112", "2221"], ["ab12", "ba22", "1113",
                                                                                               "2221"]
    assert real_benchmark.disputed_labels(labels, ours, theirs) == [(1, "ba21", "ba22"), (3, "2222", "2221")]


@pytest.mark.slow  # ~35 s: a Beam ingest, a training, an evaluation and an export; `pytest -m slow` runs it
def test_benchmarks_a_set_end_to_end(real_root, tmp_path, monkeypatch):
    rows, count_rows = real_benchmark.run_benchmark(real_root, str(tmp_path), train_minutes=0.05, only=["named"],
                                                    peers=False, label_counts=[8, None])
    [row] = rows
    assert row["set"] == "named" and row["images"] == 40 and 0 < row["test_examples"] < 40
    assert 0 <= row["test_captcha_acc"] <= 1 and row["ddddocr_captcha_acc"] is None
    spec = json.load(open(tmp_path / "data" / "named" / "spec.json"))
    assert spec["charset"] == "12ab" and spec["ingest"]["case_insensitive"]  # labels folded, name cut at '_'
    assert (spec["image"]["height"], spec["image"]["width"]) == (36, 96)  # the images' own size
    config = json.load(open(tmp_path / "runs" / "named" / "config.json"))
    assert config["model"] == "attn_small" and spec["label_lengths"] == [4]  # one length: recipe.ONE_LENGTH_MODEL
    assert config["input_height"] == 32 and config["time_budget"] == 3
    assert row["steps"] >= 1  # train_images_per_s is None where a budget this short allows one step
    train_records = DatasetSpec.load(str(tmp_path / "data" / "named")).num_records("train")
    assert [(r["set"], r["train_examples"]) for r in count_rows] == [("named", 8), ("named", train_records)]
    assert count_rows[1]["test_captcha_acc"] == row["test_captcha_acc"]  # "all" is the benchmark row, not retrained
    few = json.load(open(tmp_path / "runs" / "labels-8" / "named" / "config.json"))
    assert few["train_examples"] == 8 and (tmp_path / "label_counts.png").stat().st_size > 0
    assert (tmp_path / "label_counts.md").read_text().startswith("| set | train_examples |")
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("| set | images |") and "| named | 40 |" in table and table.rstrip().endswith("| - |")
    # With a peer (a stand-in that reads every image as "ab12"): its accuracy, and the labels it and we dispute.
    monkeypatch.setattr(real_benchmark, "ddddocr_read", lambda images: ["ab12"] * len(images))
    [row], _ = real_benchmark.run_benchmark(real_root, str(tmp_path / "peer"), train_minutes=0.05, only=["named"])
    with open(tmp_path / "peer" / "runs" / "named" / "disputed_labels.csv") as f:
        disputed = list(csv.DictReader(f))
    labels = [text for _, text in real_benchmark.test_images(DatasetSpec.load(
        str(tmp_path / "peer" / "data" / "named")))]
    assert row["ddddocr_captcha_acc"] == labels.count("ab12") / len(labels)
    assert row["disputed_labels"] == len(disputed)
    assert all(d["read_by_both"] == "ab12" != d["label"] == labels[int(d["test_record"])] for d in disputed)
    with pytest.raises(UserError, match="--sets nope not found"):
        real_benchmark.run_benchmark(real_root, str(tmp_path), 0.05, only=["nope"], peers=False)


def test_label_counts_are_positive_integers_or_all():
    assert real_benchmark.parse_label_counts(["250", "1000", "all"]) == [250, 1000, None]
    assert real_benchmark.parse_label_counts(None) == []
    for bad in ("0", "-5", "many", "2.5"):
        with pytest.raises(UserError, match=f"--label_counts takes positive integers or 'all', got '{bad}'"):
            real_benchmark.parse_label_counts(["250", bad])


def test_label_counts_plot_one_line_per_set(tmp_path):
    rows = [{"set": name, "train_examples": n, "test_captcha_acc": acc}
            for name, points in (("a", ((250, 0.5), (1000, 0.9))), ("b", ((250, 0.1), (500, 0.2), (900, 0.4))))
            for n, acc in points]
    path = tmp_path / "label_counts.png"
    plots.plot_label_counts(rows, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_label_count_ticks_keep_their_labels_apart():
    assert plots.spaced_ticks([1000, 250, 500, 837, 1047, 1320, 2000, 1000, 7567, 8039]) == [250, 500, 837, 1320,
                                                                                                2000, 7567]
