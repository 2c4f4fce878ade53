"""The `images` source: labelled image files in, the same shards and spec.json as the synthetic source.

    python -m pipeline.main --source=images --input=my_captchas/ --output_dir=data/real
    python -m pipeline.main --source=images --input=labels.csv --label_regex='^([^_]+)_' ...

A file's label is its name's stem (or group 1 of --label_regex), or the `label` column of a CSV/TSV
labels file of `path,label` rows (paths relative to that file). Images are converted to RGB, resized to
--width x --height (`pad`: keep the aspect ratio and pad with the image's border colour; `stretch`) and
re-encoded as PNG. A record's split comes from the sha256 of the file's bytes, so reruns give the same
split and copies of one image always land together; copies after the first are rejected as duplicates,
as are unreadable images, empty labels and labels with characters outside --charset, each listed with
its reason in rejected.csv beside spec.json and counted by a Beam counter.
"""

import csv
import dataclasses
import hashlib
import io
import os
import re
import typing
from typing import List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from PIL import Image, ImageOps

from pipeline import records, storage
from pipeline.render import Record
from pipeline.shards import SPLITS, write_shard

REJECTED_FILE = "rejected.csv"
LABEL_FILE_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    input: str
    charset: Optional[str]  # None: the characters of the accepted labels
    width: int = 128
    height: int = 64
    resize: str = "pad"
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def describe(self) -> dict:
        return {"input": self.input, "resize": self.resize, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction}


def list_labelled_files(path: str, label_regex: Optional[str]) -> List[Tuple[str, str]]:
    """[(file path, label)] from a folder of images or a CSV/TSV labels file; sorted by path."""
    if path.lower().endswith(LABEL_FILE_SUFFIXES) and FileSystems.exists(path):
        with FileSystems.open(path) as f:
            text = f.read().decode("utf-8-sig")
        dialect = "excel-tab" if "\t" in text.split("\n", 1)[0] else "excel"
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
            rows = rows[1:]
        bad = [i for i, r in enumerate(rows) if len(r) != 2]
        if bad:
            raise ValueError("labels file %s: row %d does not have 2 columns (path,label)" % (path, bad[0] + 1))
        folder = os.path.dirname(path)
        return sorted((r[0] if "://" in r[0] or os.path.isabs(r[0]) else storage.join(folder, r[0]), r[1])
                      for r in rows)
    pattern = re.compile(label_regex) if label_regex else None
    if pattern is not None and pattern.groups < 1:
        raise ValueError("--label_regex %r needs a group that captures the label" % label_regex)
    matches = FileSystems.match([storage.join(path, "*")])[0].metadata_list
    files = []
    for m in matches:
        name = m.path.replace("\\", "/").rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        if pattern is None:
            label = os.path.splitext(name)[0]
        else:
            found = pattern.search(name)
            label = found.group(1) if found else ""
        files.append((m.path, label))
    if not files:
        raise ValueError("--input %s holds no files (expected a folder of images or a labels .csv/.tsv)" % path)
    return sorted(files)


def to_png(data: bytes, width: int, height: int, resize: str) -> bytes:
    """Any image Pillow reads -> RGB PNG of width x height. Raises OSError/ValueError if unreadable."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = image.convert("RGB")
    if resize == "stretch":
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    else:
        w, h = image.size
        pixels = image.load()
        edge = ([pixels[x, y] for y in (0, h - 1) for x in range(w)]
                + [pixels[x, y] for x in (0, w - 1) for y in range(h)])
        colour = tuple(sorted(c[k] for c in edge)[len(edge) // 2] for k in range(3))
        image = ImageOps.pad(image, (width, height), Image.Resampling.BILINEAR, color=colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def split_of(digest: str, val_fraction: float, test_fraction: float) -> str:
    """train/val/test from a content hash: stable across runs and machines."""
    u = int(digest[:16], 16) / 2.0 ** 64
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


@beam.typehints.with_output_types(typing.Any)  # the tagged outputs defeat Beam's type inference
class ReadImage(beam.DoFn):
    """(path, label) -> (sha256, (path, label, png)); rejects tagged 'rejected' as (path, label, reason)."""

    def __init__(self, settings: IngestSettings):
        self._s = settings

    def process(self, element):
        path, label = element
        reason = None
        if not label:
            reason = "empty label"
        elif any(c.isspace() or not c.isprintable() for c in label):
            reason = "whitespace in label"
        elif self._s.charset is not None and any(c not in self._s.charset for c in label):
            reason = "characters outside the charset: %s" % "".join(
                sorted({c for c in label if c not in self._s.charset}))
        else:
            try:
                with FileSystems.open(path) as f:
                    data = f.read()
                png = to_png(data, self._s.width, self._s.height, self._s.resize)
            except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
                reason = "unreadable image: %s" % (str(e).splitlines() or [type(e).__name__])[0]
        if reason:
            Metrics.counter("captcha", "rejected_" + reason.split(":")[0].replace(" ", "_")).inc()
            yield beam.pvalue.TaggedOutput("rejected", (path, label, reason))
            return
        yield hashlib.sha256(data).hexdigest(), (path, label, png)


@beam.typehints.with_output_types(typing.Any)
class KeepFirstCopy(beam.DoFn):
    """(sha256, copies) -> ((split, shard), (sha256, label, png)) for the first path; later copies rejected."""

    def __init__(self, settings: IngestSettings, num_shards):
        self._s = settings
        self._num_shards = num_shards

    def process(self, element):
        digest, copies = element
        copies = sorted(copies)
        path, label, png = copies[0]
        for other_path, other_label, _ in copies[1:]:
            Metrics.counter("captcha", "rejected_duplicate").inc()
            yield beam.pvalue.TaggedOutput("rejected", (other_path, other_label, "duplicate of %s" % path))
        split = split_of(digest, self._s.val_fraction, self._s.test_fraction)
        Metrics.counter("captcha", "records_accepted").inc()
        yield (split, int(digest[:8], 16) % self._num_shards[split]), (digest, label, png)


class WriteImageShard(beam.DoFn):
    """((split, shard), records) -> spec entry; record indices continue across the split's shards."""

    def __init__(self, output_dir, num_shards):
        self._output_dir, self._num_shards = output_dir, num_shards

    def process(self, element, counts, charset):
        (split, shard), items = element
        offset = sum(counts.get((split, k), 0) for k in range(shard))
        index_of = {c: i for i, c in enumerate(charset)}
        values = [records.serialize(Record(offset + i, label, tuple(index_of[c] for c in label), png))
                  for i, (_, label, png) in enumerate(sorted(items))]
        entry = write_shard(self._output_dir, split, shard, self._num_shards[split], values)
        entry["label_lengths"] = sorted({len(label) for _, label, _ in items})
        yield entry


def write_rejected(rows, output_dir) -> int:
    """Writes rejected.csv (path,label,reason), sorted by path; returns the row count."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "reason"])
    writer.writerows(sorted(rows))
    storage.write_atomic(storage.join(output_dir, REJECTED_FILE), out.getvalue().encode("utf-8"))
    return len(rows)


def charset_of(labels) -> str:
    """The sorted characters of `labels`."""
    return "".join(sorted(set("".join(labels))))


class IngestImages(beam.PTransform):
    """Outputs (spec entries of written shards, rejected rows, the charset) as three PCollections."""

    def __init__(self, settings: IngestSettings, files, num_shards, output_dir):
        super().__init__()
        self._s, self._files, self._num_shards, self._output_dir = settings, files, num_shards, output_dir

    def expand(self, pbegin):
        read = (pbegin | "ListFiles" >> beam.Create(self._files)
                | "Read" >> beam.ParDo(ReadImage(self._s)).with_outputs("rejected", main="images"))
        unique = (read.images | "GroupByContent" >> beam.GroupByKey()
                  | "Dedupe" >> beam.ParDo(KeepFirstCopy(self._s, self._num_shards))
                  .with_outputs("rejected", main="records"))
        counts = unique.records | "CountPerShard" >> beam.combiners.Count.PerKey()
        if self._s.charset is None:
            charset = (unique.records | "Labels" >> beam.Map(lambda kv: kv[1][1])
                       | "InferCharset" >> beam.CombineGlobally(charset_of))
        else:
            charset = pbegin | "Charset" >> beam.Create([self._s.charset])
        entries = (unique.records | "GroupByShard" >> beam.GroupByKey()
                   | "Write" >> beam.ParDo(WriteImageShard(self._output_dir, self._num_shards),
                                           counts=beam.pvalue.AsDict(counts),
                                           charset=beam.pvalue.AsSingleton(charset)))
        rejected = (read.rejected, unique.rejected) | "Rejected" >> beam.Flatten()
        return entries, rejected, charset
