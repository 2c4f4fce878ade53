"""The images source: a folder of mixed, partly broken files in; exact accepted/rejected counts out."""
import csv
import io
import json

import pytest
import tensorflow as tf
from captcha.image import ImageCaptcha
from PIL import Image

from pipeline import main as pipeline_main
from pipeline.ingest import split_of, to_png


def _save(image, path, fmt, mode="RGB"):
    image.convert(mode).save(path, format=fmt)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """30 good images of 4 formats and 3 sizes; 1 duplicate, 2 broken, 1 empty label, 1 with a space."""
    folder = tmp_path_factory.mktemp("real")
    small, wide = ImageCaptcha(width=100, height=40), ImageCaptcha(width=200, height=70)
    for i in range(12):
        _save(small.generate_image("AB%02d" % i), folder / ("AB%02d.png" % i), "PNG")
    for i in range(8):
        _save(wide.generate_image("CD%d" % i), folder / ("CD%d.jpg" % i), "JPEG")
    for i in range(6):
        _save(small.generate_image("EF%03d" % i), folder / ("EF%03d.bmp" % i), "BMP", "P")
    for i in range(4):
        _save(wide.generate_image("GH%d" % i), folder / ("GH%d.png" % i), "PNG", "RGBA")
    (folder / "AB00.PNG").write_bytes((folder / "AB00.png").read_bytes())  # duplicate content
    (folder / "XY12.png").write_bytes((folder / "AB01.png").read_bytes()[:200])  # truncated
    (folder / "ZZ99.png").write_text("not an image")
    (folder / ".png").write_bytes((folder / "AB02.png").read_bytes())  # hidden: not listed
    _save(small.generate_image("QQ"), folder / "Q Q.png", "PNG")  # whitespace in the label
    return folder


def _run(folder, output, *extra):
    return pipeline_main.run(["--source=images", "--input=%s" % folder, "--output_dir=%s" % output,
                              "--direct_num_workers=1", "--val_fraction=0.2", "--test_fraction=0.2", *extra])


def _rejected(output):
    with open(output / "rejected.csv") as f:
        return {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(f)}


def test_ingests_good_images_and_lists_the_rest(image_folder, tmp_path):
    spec = _run(image_folder, tmp_path)
    assert sum(s["num_records"] for s in spec["splits"].values()) == 30
    assert spec["num_rejected"] == 4 and spec["num_files"] == 34
    rejected = _rejected(tmp_path)
    assert rejected["AB00.png"].startswith("duplicate of") and rejected["AB00.png"].endswith("AB00.PNG")
    assert rejected["XY12.png"].startswith("unreadable image") and rejected["ZZ99.png"].startswith("unreadable")
    assert rejected["Q Q.png"] == "whitespace in label"
    assert spec["charset"] == "0123456789ABCDEFGH"
    assert spec["label_lengths"] == [3, 4, 5] and spec["source"] == "images"
    texts = []
    for split, info in spec["splits"].items():
        for shard in info["shards"]:
            for raw in tf.data.TFRecordDataset(str(tmp_path / shard["file"])):
                example = tf.train.Example.FromString(raw.numpy()).features.feature
                image = tf.io.decode_png(example["image"].bytes_list.value[0])
                assert image.shape == (64, 128, 3)
                text = example["text"].bytes_list.value[0].decode()
                assert [spec["charset"][i] for i in example["label"].int64_list.value] == list(text)
                texts.append((split, text))
    assert len({t for _, t in texts}) == 30
    assert {s for s, _ in texts} == {"train", "val", "test"}


def test_split_is_stable_and_keeps_copies_together(image_folder, tmp_path):
    first = _run(image_folder, tmp_path / "a")
    second = _run(image_folder, tmp_path / "b", "--direct_running_mode=multi_threading", "--direct_num_workers=2")
    assert first["identity"] == second["identity"]
    for split in ("train", "val", "test"):
        assert [s["sha256"] for s in first["splits"][split]["shards"]] == [
            s["sha256"] for s in second["splits"][split]["shards"]]
    assert split_of("ab" * 32, 0.1, 0.1) == split_of("ab" * 32, 0.1, 0.1)


def test_given_charset_rejects_other_characters(image_folder, tmp_path):
    spec = _run(image_folder, tmp_path, "--charset=0123456789ABCDEF")
    rejected = _rejected(tmp_path)
    assert rejected["GH0.png"] == "characters outside the charset: GH"
    assert sum(s["num_records"] for s in spec["splits"].values()) == 26 and spec["charset"] == "0123456789ABCDEF"


def test_labels_from_csv_and_regex(image_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n%s,AB00\n%s,CD1\n" % (image_folder / "AB00.png", image_folder / "CD1.jpg"))
    spec = _run(labels, tmp_path / "csv")
    assert sum(s["num_records"] for s in spec["splits"].values()) == 2 and spec["charset"] == "01ABCD"
    spec = _run(image_folder, tmp_path / "regex", "--label_regex=^([A-Z]+)")
    assert spec["charset"] == "ABCDEFGHQ", "labels of rejected images add no characters"


def test_pad_keeps_aspect_ratio_and_stretch_fills():
    image = Image.new("RGB", (200, 20), (250, 250, 250))
    image.paste((0, 0, 0), (10, 5, 190, 15))
    padded = Image.open(io.BytesIO(to_png(_png(image), 128, 64, "pad")))
    stretched = Image.open(io.BytesIO(to_png(_png(image), 128, 64, "stretch")))
    assert padded.size == stretched.size == (128, 64)
    assert stretched.getpixel((64, 20)) == (0, 0, 0) and stretched.getpixel((64, 32)) == (0, 0, 0)
    assert padded.getpixel((64, 32)) == (0, 0, 0), "the image keeps the middle"
    assert padded.getpixel((64, 2)) != (0, 0, 0), "and is padded above and below"


def _png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("args, message", [
    (["--source=images"], "needs --input"),
    (["--source=images", "--input=/no/such/folder"], "holds no files"),
    (["--source=images", "--input=.", "--val_fraction=0.6", "--test_fraction=0.5"], "sum to less than 1"),
    (["--source=images", "--input=.", "--label_regex=[A-Z]+"], "needs a group"),
])
def test_bad_image_source_input(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        pipeline_main.run(["--output_dir=%s" % tmp_path, *args])


def test_all_rejected_is_a_clear_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "AB.png").write_text("nope")
    with pytest.raises(ValueError, match="no image in --input .* was accepted"):
        _run(folder, tmp_path / "out")
    assert (tmp_path / "out" / "rejected.csv").exists() and not (tmp_path / "out" / "spec.json").exists()
