"""The dataset's `spec.json`: its identity, schema, shard list with sha256, settings and versions.

It is written last and atomically: a folder without spec.json is an incomplete dataset.
"""

import datetime
import hashlib
import json
import logging
from typing import Dict, List

import apache_beam
import captcha
import PIL

import pipeline
from pipeline import records, storage
from pipeline.config import DatasetConfig
from pipeline.ingest import REJECTED_FILE, preprocessing, write_rejected
from pipeline.shards import SPLITS, is_shard_name

FORMAT_VERSION = 1
SPEC_FILE = "spec.json"


def identity_fields(config: DatasetConfig) -> dict:
    """Everything that decides the bytes of the shards."""
    s = config.render
    fields = {
        "format_version": FORMAT_VERSION, "charset": s.charset,
        "image": {"height": s.height, "width": s.width, "channels": 3, "encoding": "png"},
        "num_shards": config.num_shards,
        "versions": {"captcha": captcha.__version__, "pipeline": pipeline.__version__,
                     "pillow": PIL.__version__},
    }
    if config.ingest:
        return dict(fields, source="images", ingest=config.ingest.describe(), files=config.files)
    return dict(fields, source="synthetic", render=s.describe(), seed=config.seed, sizes=config.sizes)


def identity(config: DatasetConfig) -> str:
    """A short hash of `identity_fields`: equal identities mean byte-identical datasets."""
    canonical = json.dumps(identity_fields(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def build(config: DatasetConfig, shard_entries: List[Dict], num_rejected: int = 0, charset=None) -> dict:
    """The spec of a finished dataset; raises RuntimeError if synthetic shards are missing records."""
    fields = identity_fields(config)
    splits = {}
    for split in SPLITS:
        shards = sorted((e for e in shard_entries if e["split"] == split), key=lambda e: e["file"])
        shards = [{k: e[k] for k in ("file", "num_records", "num_bytes", "sha256")} for e in shards]
        count = sum(e["num_records"] for e in shards)
        if not config.ingest and (count != config.sizes[split] or len(shards) != config.num_shards[split]):
            raise RuntimeError("split %s has %d records in %d shards, expected %d in %d" % (
                split, count, len(shards), config.sizes[split], config.num_shards[split]))
        splits[split] = {"num_records": count, "num_bytes": sum(e["num_bytes"] for e in shards),
                         "shards": shards}
    s = config.render
    if config.ingest:
        lengths = sorted({n for e in shard_entries for n in e["label_lengths"]})
        source = {"ingest": fields["ingest"], "num_files": len(config.files), "num_rejected": num_rejected,
                  "rejected_file": REJECTED_FILE, "seed": None}
    else:
        lengths = list(range(s.min_length, s.max_length + 1))
        source = {"seed": config.seed, "render": fields["render"]}
    return {
        "format_version": FORMAT_VERSION,
        "identity": identity(config),
        "source": fields["source"],
        "charset": charset or s.charset,
        "label_lengths": lengths,
        "image": fields["image"],
        "features": records.FEATURES,
        "preprocessing": preprocessing(config.ingest.resize if config.ingest else "stretch"),
        "splits": splits,
        **source,
        "versions": dict(fields["versions"], apache_beam=apache_beam.__version__),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def is_leftover(name: str) -> bool:
    """True for a shard file name, or a temporary file of a shard, spec.json or rejected.csv."""
    target = storage.temporary_target(name)
    return is_shard_name(name) or is_shard_name(target) or target in (SPEC_FILE, REJECTED_FILE)


def finalize(shard_entries: List[Dict], config: DatasetConfig, rejected=(), charset=None) -> None:
    """Writes rejected.csv (images source), deletes the shards and temporary files in the folder that the
    new dataset does not list (of a replaced dataset or a killed run), then writes spec.json."""
    if config.ingest:
        write_rejected(list(rejected), config.output_dir)
        if not shard_entries:
            logging.error("no image was accepted; see %s", REJECTED_FILE)
            return
    spec = build(config, shard_entries, len(rejected), charset)
    keep = set(shard_files(spec))
    leftovers = [n for n in storage.file_names(config.output_dir) if is_leftover(n) and n not in keep]
    for name in leftovers:
        logging.info("deleting %s from %s: dataset %s does not list it", name, config.output_dir,
                     spec["identity"])
    storage.delete_if_exists([storage.join(config.output_dir, n) for n in leftovers])
    storage.write_atomic(storage.join(config.output_dir, SPEC_FILE),
                         json.dumps(spec, indent=2).encode("utf-8"))
    logging.info("dataset %s complete in %s", spec["identity"], config.output_dir)


def read(output_dir: str):
    """The spec of a complete dataset in `output_dir`, or None; raises ValueError if spec.json is not one."""
    spec = storage.read_json(storage.join(output_dir, SPEC_FILE))
    if spec is not None:
        shard_files(spec)
    return spec


def shard_files(spec) -> List:
    """The `file` of every shard in `spec`; raises ValueError if it has no splits.<split>.shards[].file."""
    try:
        return [e["file"] for split in spec["splits"].values() for e in split["shards"]]
    except (KeyError, TypeError, AttributeError):
        raise ValueError("not a dataset spec: it lists no splits.<split>.shards[].file") from None
