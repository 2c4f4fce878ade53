"""Unit tests of the pipeline's pieces: charsets, settings, rendering, shard plans, Beam transforms."""
import concurrent.futures
import io

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline import charsets, records
from pipeline import config as dataset_config
from pipeline.render import CaptchaRenderer, RenderSettings
from pipeline.shards import Task, default_num_shards, plan_tasks, shard_name, shard_range
from pipeline.synthetic import RenderShard, RenderShards


def test_presets_and_literal_charsets():
    assert charsets.resolve_charset("alnum_upper") == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert charsets.resolve_charset("digits") == "0123456789"
    assert len(charsets.resolve_charset("alnum")) == 62
    assert charsets.resolve_charset("abc#") == "abc#"


@pytest.mark.parametrize("charset, message", [("", "empty"), ("ABCA", "repeats"), ("AB C", "whitespace")])
def test_bad_charsets(charset, message):
    with pytest.raises(ValueError, match=message):
        charsets.resolve_charset(charset)


def test_record_is_a_function_of_seed_split_and_index():
    renderer = CaptchaRenderer(RenderSettings())
    a = renderer.render(3, "train", 5)
    assert a == CaptchaRenderer(RenderSettings()).render(3, "train", 5)
    assert a.png != renderer.render(3, "val", 5).png
    assert a.png != renderer.render(4, "train", 5).png
    assert a.png != renderer.render(3, "train", 6).png
    image = Image.open(io.BytesIO(a.png))
    assert image.size == (128, 64) and image.mode == "RGB"
    assert [RenderSettings().charset[i] for i in a.label] == list(a.text) and len(a.text) == 4


def test_threads_rendering_at_once_give_the_same_records():
    renderer_per_thread = {}

    def render(index):
        import threading
        renderer = renderer_per_thread.setdefault(threading.get_ident(), CaptchaRenderer(RenderSettings()))
        return renderer.render(0, "train", index)

    sequential = [CaptchaRenderer(RenderSettings()).render(0, "train", i) for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(render, range(24)))
    assert threaded == sequential


def test_variable_lengths_cover_the_range():
    renderer = CaptchaRenderer(RenderSettings(min_length=3, max_length=6))
    lengths = {len(renderer.render(0, "train", i).text) for i in range(60)}
    assert lengths == {3, 4, 5, 6}


@pytest.mark.parametrize("settings, message", [
    (RenderSettings(min_length=0, max_length=0), "at least 1"),
    (RenderSettings(min_length=5, max_length=4), "smaller than"),
    (RenderSettings(width=30), "too small for 4 characters"),
    (RenderSettings(height=10), "--height"),
    (RenderSettings(fonts=("/no/such/font.ttf",)), "cannot be loaded"),
    (RenderSettings(font_sizes=(0,)), "--font_sizes"),
])
def test_bad_render_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        settings.validate()


def test_shards_hold_contiguous_index_ranges():
    ranges = [shard_range(10, 3, k) for k in range(3)]
    assert [list(r) for r in ranges] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    tasks = plan_tasks({"train": 250, "val": 7, "test": 0}, {"train": 2, "val": 1, "test": 0})
    assert tasks == [Task("train", 0, 2, 0, 125), Task("train", 1, 2, 125, 250), Task("val", 0, 1, 0, 7)]
    assert shard_name("train", 1, 12) == "train.tfrecord-00001-of-00012"


def test_default_shard_counts_follow_size_and_spread_work():
    assert default_num_shards(0, 8000, 64e6) == 0
    assert default_num_shards(500, 8000, 64e6) == 1
    assert default_num_shards(20_000, 8000, 64e6) == 16, "16 shards so that workers share the rendering"
    assert default_num_shards(100_000, 8000, 64e6) == 16
    assert default_num_shards(1_000_000, 8000, 64e6) == 125, "by size: 8 GB / 64 MB"
    assert default_num_shards(10, 8000, 1000) == 10, "never more shards than records"


def test_serialize_is_deterministic_and_parses_back():
    import tensorflow as tf
    record = CaptchaRenderer(RenderSettings()).render(0, "test", 2)
    data = records.serialize(record)
    assert data == records.serialize(record)
    example = tf.train.Example.FromString(data)
    features = example.features.feature
    assert features["image"].bytes_list.value[0] == record.png
    assert features["text"].bytes_list.value[0].decode() == record.text
    assert list(features["label"].int64_list.value) == list(record.label)
    assert features["length"].int64_list.value[0] == 4
    assert features["index"].int64_list.value[0] == 2
    assert set(features) == set(records.FEATURES)


def _pipeline():
    return test_pipeline.TestPipeline(runner="FnApiRunner")


def test_render_shard_writes_its_records_in_index_order(tmp_path):
    import tensorflow as tf
    settings = RenderSettings()
    with _pipeline() as p:
        entries = (p | beam.Create([Task("val", 1, 3, 10, 13)])
                   | beam.ParDo(RenderShard(settings, 7, str(tmp_path)))
                   | beam.Map(lambda e: (e["file"], e["num_records"])))
        assert_that(entries, equal_to([("val.tfrecord-00001-of-00003", 3)]))
    written = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "val.tfrecord-00001-of-00003"))]
    renderer = CaptchaRenderer(settings)
    assert written == [records.serialize(renderer.render(7, "val", i)) for i in (10, 11, 12)]


def test_render_shards_transform_writes_files(tmp_path):
    with _pipeline() as p:
        entries = (p | RenderShards(RenderSettings(), 1, {"train": 5, "val": 2, "test": 0},
                                    {"train": 2, "val": 1, "test": 0}, str(tmp_path))
                   | beam.Map(lambda e: (e["file"], e["num_records"])))
        assert_that(entries, equal_to([("train.tfrecord-00000-of-00002", 2),
                                       ("train.tfrecord-00001-of-00002", 3),
                                       ("val.tfrecord-00000-of-00001", 2)]))
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002", "val.tfrecord-00000-of-00001"]


def test_case_insensitive_rendering_draws_either_case_and_labels_lower_case(monkeypatch):
    settings = RenderSettings(charset="abc", case_insensitive=True)
    renderer = CaptchaRenderer(settings)
    drawn = []
    generate = renderer._captcha.generate_image
    monkeypatch.setattr(renderer._captcha, "generate_image", lambda text: drawn.append(text) or generate(text))
    records_ = [renderer.render(0, "train", i) for i in range(20)]
    assert all(r.text.islower() for r in records_)
    assert [d.lower() for d in drawn] == [r.text for r in records_]
    letters = "".join(drawn)
    assert any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    assert "case_insensitive" in settings.describe() and "case_insensitive" not in RenderSettings().describe()
    with pytest.raises(ValueError, match="lower-case charset"):
        RenderSettings(charset="AB", case_insensitive=True).validate()


def test_case_insensitive_synthetic_flag_folds_the_charset():
    config, _ = dataset_config.parse(["--output_dir=unused", "--case_insensitive", "--charset=alnum_upper"])
    assert config.render.charset == "0123456789abcdefghijklmnopqrstuvwxyz" and config.render.case_insensitive
