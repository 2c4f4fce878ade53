"""The `images` source: labelled image files in, the same shards and spec.json as the synthetic source.

    python -m pipeline.main --source=images --input=my_captchas/ --output_dir=data/real
    python -m pipeline.main --source=images --input=labels.csv --label_regex='^([^_]+)_' ...

A file's label is its name's stem (or group 1 of --label_regex), or its row in a labels file (paths
relative to that file): CSV, TSV or whitespace-separated `.csv/.tsv/.txt` rows of path and label in either
order (with or without a header such as `path,label` or `file,text`), or a `.json` object {path: label} or
list of {"path": ..., "label": ...}; of a CSV/TSV whose header has a `checked` column (captcha_break.label writes
one), only the rows checked there (1, yes, y, true or x). --case_insensitive folds labels (and --charset) to lower
case, for sets whose labels and images disagree on case. Images are converted to RGB, resized to --width x --height
(default: the median size of the input images; `pad`: keep the aspect ratio and pad with the image's border
colour; `stretch`) and
re-encoded as PNG (`to_png`, whose steps spec.json records as `preprocessing`). Every file's sha256 is
part of the dataset's identity, so an image fixed in place renders the dataset again. A record's split
comes from that hash, so reruns give the same split and copies of one image always land together; copies
after the first are rejected as duplicates (every copy, if their labels differ), as are empty files,
unreadable images, empty labels and labels with characters outside --charset, each listed with a reason
that is the same in every run in rejected.csv beside spec.json, and counted by a Beam counter.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import stat
import typing
from typing import List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline import records, storage
from pipeline.render import Record
from pipeline.shards import write_shard

REJECTED_FILE = "rejected.csv"
LABEL_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
PATH_HEADERS = ("path", "file", "filename", "file_name", "image", "img", "name")
LABEL_HEADERS = ("label", "text", "captcha", "code", "answer", "value")
CHECKED_HEADER = "checked"  # a labels file's optional column (captcha_break.label's): only rows checked are read
CHECKED_VALUES = ("1", "yes", "y", "true", "x")
HASH_THREADS = 16  # files hashed at once while listing: reads of small files, mostly waiting on storage
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")  # P: its palette may hold transparency


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    input: str
    charset: Optional[str]  # None: the characters of the accepted labels
    width: int = 128
    height: int = 64
    resize: str = "pad"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    case_insensitive: bool = False

    def describe(self) -> dict:
        return {"input": self.input, "resize": self.resize, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction, "case_insensitive": self.case_insensitive}


def _decode_labels_file(path: str) -> str:
    with FileSystems.open(path) as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError("labels file %s is not UTF-8 text: line %d has a byte that is not; save it as UTF-8"
                         % (path, data[:e.start].count(b"\n") + 1)) from None


def _json_rows(path: str, text: str) -> List[Tuple[str, str]]:
    """{path: label} or [{"path": ..., "label": ...}] (any of PATH_HEADERS / LABEL_HEADERS as keys)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError("labels file %s is not valid JSON: %s" % (path, e)) from None
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return list(data.items())
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        rows = []
        for i, row in enumerate(data):
            keys = {k.strip().lower(): v for k, v in row.items()}
            found = ([keys[k] for k in PATH_HEADERS if k in keys][:1], [keys[k] for k in LABEL_HEADERS if k in keys][:1])
            if not all(found):
                raise ValueError("labels file %s: entry %d has no path and label keys (%s)" % (path, i, sorted(keys)))
            rows.append((str(found[0][0]), str(found[1][0])))
        return rows
    raise ValueError("labels file %s: expected a JSON object {path: label} or a list of {\"path\", \"label\"}" % path)


def _column_order(rows) -> Tuple[int, int, bool]:
    """(path column, label column, whether the first row is a header) of a labels file's (line, row) pairs:
    a header names them (PATH_HEADERS, LABEL_HEADERS); without one, the path is the column whose values end
    in an image suffix more often (the first on a tie)."""
    first = [c.strip().lower() for c in rows[0][1]]
    path_at = [i for i, c in enumerate(first) if c in PATH_HEADERS]
    label_at = [i for i, c in enumerate(first) if c in LABEL_HEADERS]
    if path_at and label_at:
        return path_at[0], label_at[0], True
    first_is_path = sum(r[1][0].strip().lower().endswith(IMAGE_SUFFIXES) for r in rows[:100] if r[1])
    second_is_path = sum(len(r[1]) > 1 and r[1][1].strip().lower().endswith(IMAGE_SUFFIXES) for r in rows[:100])
    return (1, 0, False) if second_is_path > first_is_path else (0, 1, False)


def _labels_file_rows(path: str) -> List[Tuple[str, str]]:
    """[(path, label)] of a labels file (module docstring: the shapes it reads); raises ValueError naming the
    file's line at fault."""
    text = _decode_labels_file(path)
    if path.lower().endswith(".json"):
        rows = _json_rows(path, text)
    else:
        first_line = text.split("\n", 1)[0]
        if "\t" in first_line or "," in first_line:
            reader = csv.reader(io.StringIO(text), "excel-tab" if "\t" in first_line else "excel")
        else:  # whitespace-separated: `path label` per line
            reader = csv.reader(io.StringIO(text), delimiter=" ", skipinitialspace=True)
        try:  # line_num: the file's line, blank lines and the header counted
            lines = [(reader.line_num, [c for c in r if c.strip()] if reader.dialect.delimiter == " " else r)
                     for r in reader if any(c.strip() for c in r)]
        except csv.Error as e:
            raise ValueError("labels file %s: line %d cannot be read as CSV: %s"
                             % (path, reader.line_num, e)) from None
        if not lines:
            raise ValueError("labels file %s has no rows" % path)
        path_at, label_at, header = _column_order(lines)
        width = len(lines[0][1]) if header else 2
        checked_at = [i for i, c in enumerate(lines[0][1]) if header and c.strip().lower() == CHECKED_HEADER]
        rows = []
        for line, row in lines[1:] if header else lines:
            if len(row) != width:
                raise ValueError("labels file %s: line %d should have %d columns (path and label) but has %d"
                                 % (path, line, width, len(row)))
            if checked_at and row[checked_at[0]].strip().lower() not in CHECKED_VALUES:
                continue  # a pre-labelled row nobody checked (captcha_break.label): not a label yet
            rows.append((row[path_at].strip(), row[label_at].strip()))
        if checked_at and not rows:
            raise ValueError("labels file %s: no row is checked (its checked column is empty): check the rows, "
                             "putting 1 in that column" % path)
    folder = os.path.dirname(path)
    return [(p if "://" in p or os.path.isabs(p) else storage.join(folder, p), label) for p, label in rows]


def _folder_files(path: str, label_regex: Optional[str]) -> List[Tuple[str, str]]:
    """[(path, label)] of the files in a folder, labelled by name."""
    pattern = re.compile(label_regex) if label_regex else None
    if pattern is not None and pattern.groups < 1:
        raise ValueError("--label_regex %r needs a group that captures the label" % label_regex)
    if storage.is_local(path):  # every entry, folders, FIFOs and broken links too: rejected.csv names them
        if not os.path.isdir(path):
            raise ValueError("--input %s %s (expected a folder of images or a labels .csv/.tsv/.txt/.json)"
                             % (path, "is not a folder" if os.path.exists(path) else "does not exist"))
        paths = [entry.path for entry in os.scandir(path)]
    else:
        paths = [m.path for m in FileSystems.match([storage.join(path, "*")])[0].metadata_list]
    files = []
    for file_path in paths:
        name = file_path.replace("\\", "/").rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        if pattern is None:
            label = os.path.splitext(name)[0]
        else:
            found = pattern.search(name)
            label = found.group(1) if found else ""
        files.append((file_path, label))
    if not files:
        raise ValueError("--input %s holds no files (expected a folder of images or a labels .csv/.tsv)" % path)
    return files


def not_a_file(path: str) -> Optional[str]:
    """Why the local `path` is not a regular file to read (a folder, a FIFO, a broken link...), or None. Opening
    a FIFO would wait for a writer forever."""
    if not storage.is_local(path):
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return "broken link" if os.path.islink(path) else "unreadable file: %s" % error_text(e)
    if stat.S_ISREG(mode):
        return None
    kind = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
            stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return "not a regular file: %s" % next((name for test, name in kind.items() if test(mode)), "a special file")


def file_facts(path: str) -> Tuple[Optional[str], Optional[Tuple[int, int]]]:
    """(sha256 of a file's bytes, its image's (width, height)); None for what cannot be read (ReadImage then
    says why). Pillow reads only the image's header for its size."""
    if not_a_file(path):
        return None, None
    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except Exception:  # OSError locally, BeamIOError or a client error remotely
        return None, None
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    except Exception:  # not an image: rejected later with its reason
        size = None
    return hashlib.sha256(data).hexdigest(), size


def list_labelled_files(path: str, label_regex: Optional[str], case_insensitive: bool = False):
    """([(file path, label, sha256 of its bytes)] sorted by path, [(width, height) of each readable image])
    from a folder of images or a labels file. The hashes put the files' contents into the dataset's
    identity; the sizes give the dataset's default image size."""
    if path.lower().endswith(LABEL_FILE_SUFFIXES) and FileSystems.exists(path):
        files = _labels_file_rows(path)
    else:
        files = _folder_files(path, label_regex)
    if case_insensitive:
        files = [(f, label.lower()) for f, label in files]
    files.sort()
    with concurrent.futures.ThreadPoolExecutor(HASH_THREADS) as pool:
        facts = list(pool.map(file_facts, [f for f, _ in files]))
    return ([(f, label, digest) for (f, label), (digest, _) in zip(files, facts)],
            [size for _, size in facts if size])


def median_size(sizes) -> Tuple[int, int]:
    """The median width and the median height of (width, height) pairs (upper median: a real size)."""
    widths, heights = sorted(w for w, _ in sizes), sorted(h for _, h in sizes)
    return widths[len(widths) // 2], heights[len(heights) // 2]


def preprocessing(resize: str) -> dict:
    """What `to_png` does, as spec.json records it for serving to repeat."""
    return {"resize": resize, "filter": "bilinear", "antialias": True,
            "pad_colour": "border_median" if resize == "pad" else None, "alpha": "white"}


def to_png(data: bytes, width: int, height: int, resize: str) -> bytes:
    """Any image Pillow reads -> RGB PNG of width x height. Raises OSError/ValueError if unreadable.

    The reference of spec.json's `preprocessing`, which serving repeats:
    1. alpha: transparency (an alpha channel, a palette's or a tRNS colour) is composited on white.
    2. filter: Pillow's BILINEAR, which antialiases when downscaling (its triangle filter widens with the
       scale, as tf.image.resize(..., "bilinear", antialias=True) does); results are 8-bit.
    3. resize "stretch": resize to (width, height). "pad" (ImageOps.pad): a w x h image is resized to
       (width, round((h / w) * width)) if w / h > width / height, else to (round((w / h) * height), height)
       (float quotients, in that order), then pasted at x = round((width - new_width) / 2),
       y = round((height - new_height) / 2) on a canvas of the border colour. round is Python's: halves
       go to the even integer (50.5 -> 50, 47.5 -> 48, 6.5 -> 6), as tf.round does. pad_colour
       "border_median": per channel, the value at index n // 2 of the sorted values of the n pixels of
       the top and bottom rows and the left and right columns of the image before resizing (corners
       counted twice).
    """
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ALPHA_MODES or "transparency" in image.info:
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


def error_text(error: Exception) -> str:
    """One line on why a file could not be read or decoded, the same in every run (no object addresses)."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can read"
    return re.sub(r" at 0x[0-9A-Fa-f]+", "", (str(error).splitlines() or [type(error).__name__])[0])


def label_problem(label: str, charset: Optional[str]) -> Optional[str]:
    """Why `label` cannot be a record's label, or None."""
    if not label:
        return "empty label"
    if any(c.isspace() or not c.isprintable() for c in label):
        return "whitespace in label"
    if charset is not None and any(c not in charset for c in label):
        return "characters outside the charset: %s" % "".join(sorted({c for c in label if c not in charset}))
    return None


REJECTED, ACCEPTED = "rejected", "accepted"


def tagged(element, tag):
    """The value of a (tag, value) element if it has `tag`: one output per ParDo, not `with_outputs`,
    whose outputs Beam 2.77's DaskRunner hands mixed to every consumer."""
    if element[0] == tag:
        yield element[1]


@beam.typehints.with_output_types(typing.Any)
class ReadImage(beam.DoFn):
    """(path, label, sha256) -> (ACCEPTED, (sha256, (path, label, png))), or (REJECTED, (path, label,
    reason))."""

    def __init__(self, settings: IngestSettings):
        self._s = settings

    def process(self, element):
        path, label, digest = element
        reason = label_problem(label, self._s.charset) or not_a_file(path)
        if not reason:
            try:
                with FileSystems.open(path) as f:
                    data = f.read()
            except Exception as e:  # OSError locally, BeamIOError or a client error remotely
                reason = "unreadable file: %s" % error_text(e)
        if not reason:
            if not data:
                reason = "empty file"
            elif hashlib.sha256(data).hexdigest() != digest:
                reason = "file changed while the pipeline ran; run it again"
        if not reason:
            try:
                png = to_png(data, self._s.width, self._s.height, self._s.resize)
            except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
                reason = "unreadable image: %s" % error_text(e)
        if reason:
            Metrics.counter("captcha", "rejected_" + reason.split(":")[0].replace(" ", "_")).inc()
            yield REJECTED, (path, label, reason)
            return
        yield ACCEPTED, (digest, (path, label, png))


@beam.typehints.with_output_types(typing.Any)
class KeepFirstCopy(beam.DoFn):
    """(sha256, copies) -> (ACCEPTED, ((split, shard), (sha256, label, png))) for the first path; later
    copies (REJECTED, row) as duplicates. Copies under different labels are all rejected: which label is
    right is unknown."""

    def __init__(self, settings: IngestSettings, num_shards):
        self._s = settings
        self._num_shards = num_shards

    def process(self, element):
        digest, copies = element
        copies = sorted(copies)
        if len({label for _, label, _ in copies}) > 1:
            for path, label, _ in copies:
                other = next((p, l) for p, l, _ in copies if l != label)
                Metrics.counter("captcha", "rejected_conflicting_labels").inc()
                yield REJECTED, (path, label, "conflicting labels: same bytes as %s labelled %r" % other)
            return
        path, label, png = copies[0]
        for other_path, other_label, _ in copies[1:]:
            Metrics.counter("captcha", "rejected_duplicate").inc()
            yield REJECTED, (other_path, other_label, "duplicate of %s" % path)
        split = split_of(digest, self._s.val_fraction, self._s.test_fraction)
        Metrics.counter("captcha", "records_accepted").inc()
        yield ACCEPTED, ((split, int(digest[:8], 16) % self._num_shards[split]), (digest, label, png))


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
        read = pbegin | "ListFiles" >> beam.Create(self._files) | "Read" >> beam.ParDo(ReadImage(self._s))
        unique = (read | "Images" >> beam.FlatMap(tagged, ACCEPTED).with_output_types(typing.Any)
                  | "GroupByContent" >> beam.GroupByKey()
                  | "Dedupe" >> beam.ParDo(KeepFirstCopy(self._s, self._num_shards)))
        records = unique | "Records" >> beam.FlatMap(tagged, ACCEPTED).with_output_types(typing.Any)
        counts = records | "CountPerShard" >> beam.combiners.Count.PerKey()
        if self._s.charset is None:
            charset = (records | "Labels" >> beam.Map(lambda kv: kv[1][1])
                       | "InferCharset" >> beam.CombineGlobally(charset_of))
        else:
            charset = pbegin | "Charset" >> beam.Create([self._s.charset])
        entries = (records | "GroupByShard" >> beam.GroupByKey()
                   | "Write" >> beam.ParDo(WriteImageShard(self._output_dir, self._num_shards),
                                           counts=beam.pvalue.AsDict(counts),
                                           charset=beam.pvalue.AsSingleton(charset)))
        rejected = ((read | "RejectedFiles" >> beam.FlatMap(tagged, REJECTED),
                     unique | "RejectedCopies" >> beam.FlatMap(tagged, REJECTED)) | "Rejected" >> beam.Flatten())
        return entries, rejected, charset
