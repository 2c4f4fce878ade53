"""The images source: a folder of mixed, partly broken files in; exact accepted/rejected counts out."""
import csv
import io

import numpy as np
import pytest
import tensorflow as tf
from captcha.image import ImageCaptcha
from PIL import Image

from pipeline import main as pipeline_main
from pipeline.ingest import REJECTED, IngestSettings, ReadImage, _labels_file_rows, split_of, to_png


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
                assert image.shape == (40, 100, 3)  # the median size: 19 images are 100x40, 12 are 200x70
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
    (["--source=images", "--input=/no/such/folder"], "does not exist"),
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


@pytest.fixture(scope="module")
def ingested_twice(tmp_path_factory):
    """A folder ingested twice into two folders: good images, a same-label copy, the same bytes under two
    labels, an empty file and a file that is no image."""
    folder = tmp_path_factory.mktemp("faults")
    small = ImageCaptcha(width=100, height=40)
    for text in ("AB12", "CD34", "EF56"):
        _save(small.generate_image(text), folder / ("%s.png" % text), "PNG")
    (folder / "AB12.PNG").write_bytes((folder / "AB12.png").read_bytes())  # same label: a duplicate
    (folder / "GH78.png").write_bytes((folder / "CD34.png").read_bytes())  # same bytes, other label
    (folder / "EE00.png").write_bytes(b"")
    (folder / "ZZ99.png").write_text("not an image")
    outputs = [tmp_path_factory.mktemp("once"), tmp_path_factory.mktemp("twice")]
    specs = [_run(folder, output, "--direct_running_mode=" + mode)
             for output, mode in zip(outputs, ("in_memory", "multi_threading"))]
    return folder, outputs, specs


def test_identical_ingests_write_identical_rejected_files(ingested_twice):
    _, (first, second), _ = ingested_twice
    assert (first / "rejected.csv").read_bytes() == (second / "rejected.csv").read_bytes()


def test_rejected_reasons_are_fixed_texts(ingested_twice):
    folder, (output, _), (spec, _) = ingested_twice
    rejected = _rejected(output)
    assert rejected["EE00.png"] == "empty file"
    assert rejected["ZZ99.png"] == "unreadable image: not an image Pillow can read"
    assert rejected["AB12.png"] == "duplicate of %s" % (folder / "AB12.PNG")
    assert spec["num_rejected"] == 5 and sum(s["num_records"] for s in spec["splits"].values()) == 2


def test_same_bytes_under_two_labels_reject_both(ingested_twice):
    folder, (output, _), _ = ingested_twice
    rejected = _rejected(output)
    conflict = "conflicting labels: same bytes as %s labelled %r"
    assert rejected["CD34.png"] == conflict % (folder / "GH78.png", "GH78")
    assert rejected["GH78.png"] == conflict % (folder / "CD34.png", "CD34")


def test_spec_records_the_preprocessing(ingested_twice):
    _, _, (spec, _) = ingested_twice
    assert spec["preprocessing"] == {"resize": "pad", "filter": "bilinear", "antialias": True,
                                     "pad_colour": "border_median", "alpha": "white"}


def test_fixing_an_image_in_place_changes_the_identity(tmp_path):
    from pipeline import config as dataset_config
    from pipeline import spec as dataset_spec
    (tmp_path / "AB.png").write_bytes(_png(Image.new("RGB", (40, 20), "white")))
    argv = ["--source=images", "--input=%s" % tmp_path, "--output_dir=%s" % (tmp_path / "out")]
    before = dataset_spec.identity(dataset_config.parse(argv)[0])
    (tmp_path / "AB.png").write_bytes(_png(Image.new("RGB", (40, 20), "black")))
    assert dataset_spec.identity(dataset_config.parse(argv)[0]) != before


def test_transparency_is_composited_on_white():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (10, 5, 30, 15))
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=(255, 0, 0))
    converted = Image.open(io.BytesIO(to_png(out.getvalue(), 40, 20, "stretch")))
    assert converted.getpixel((0, 0)) == (255, 255, 255) and converted.getpixel((20, 10)) == (0, 0, 255)


@pytest.mark.parametrize("size, new_size, offset", [
    ((256, 101), (128, 50), (0, 7)),  # new height round(50.5) = 50: halves round to even
    ((100, 40), (128, 51), (0, 6)),  # offset round(6.5) = 6
    ((33, 64), (33, 64), (48, 0)),  # offset round(47.5) = 48
    ((64, 32), (128, 64), (0, 0)),
])
def test_pad_follows_its_documented_arithmetic(size, new_size, offset):
    """to_png's docstring, which serving copies: resize to new_size, paste at offset on the border colour."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    padded = Image.open(io.BytesIO(to_png(_png(image), 128, 64, "pad")))
    pixels = np.asarray(image)
    border = np.concatenate([pixels[[0, -1]].reshape(-1, 3), pixels[:, [0, -1]].reshape(-1, 3)])
    expected = Image.new("RGB", (128, 64), tuple(int(v) for v in np.sort(border, axis=0)[len(border) // 2]))
    expected.paste(image.resize(new_size, Image.Resampling.BILINEAR), offset)
    assert np.array_equal(np.asarray(padded), np.asarray(expected))


def test_a_file_changed_after_listing_is_rejected(tmp_path):
    path = tmp_path / "AB.png"
    path.write_bytes(_png(Image.new("RGB", (40, 20))))
    [(tag, row)] = ReadImage(IngestSettings(input=str(tmp_path), charset=None)).process((str(path), "AB", "0" * 64))
    assert tag == REJECTED and row[2] == "file changed while the pipeline ran; run it again"


def test_a_given_height_keeps_the_images_median_aspect_ratio(image_folder, tmp_path):
    spec = _run(image_folder, tmp_path, "--height=32")
    assert (spec["image"]["height"], spec["image"]["width"]) == (32, 80)


def test_case_insensitive_folds_labels_and_the_charset(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    small = ImageCaptcha(width=100, height=40)
    for text in ("aB3x", "Cd9Y", "EFGH", "ijkl"):
        _save(small.generate_image(text), folder / ("%s.png" % text), "PNG")
    spec = _run(folder, tmp_path / "out", "--case_insensitive", "--charset=ABCDEFGHIJKLXY39")
    assert spec["charset"] == "abcdefghijklxy39" and spec["num_rejected"] == 0
    assert spec["ingest"]["case_insensitive"] is True
    texts = {tf.train.Example.FromString(raw.numpy()).features.feature["text"].bytes_list.value[0].decode()
             for info in spec["splits"].values() for shard in info["shards"]
             for raw in tf.data.TFRecordDataset(str(tmp_path / "out" / shard["file"]))}
    assert texts == {"ab3x", "cd9y", "efgh", "ijkl"}


@pytest.mark.parametrize("name, content", [
    ("labels.csv", "file,text\na.png,AB12\nsub/b.jpg,CD34\n"),
    ("labels.csv", "label,path\nAB12,a.png\nCD34,sub/b.jpg\n"),
    ("labels.tsv", "AB12\ta.png\nCD34\tsub/b.jpg\n"),
    ("labels.txt", "a.png AB12\n\nsub/b.jpg   CD34\n"),
    ("labels.json", '{"a.png": "AB12", "sub/b.jpg": "CD34"}'),
    ("labels.json", '[{"path": "a.png", "label": "AB12"}, {"image": "sub/b.jpg", "text": "CD34"}]'),
])
def test_labels_files_of_common_shapes(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    rows = _labels_file_rows(str(tmp_path / name))
    assert sorted((p.rsplit("/", 2)[-1] if "sub" not in p else "sub/b.jpg", label) for p, label in rows) == [
        ("a.png", "AB12"), ("sub/b.jpg", "CD34")]
