"""Renders a dataset the trainer reads, on every core, without Apache Beam (the GPU host has no Beam).

The records are the pipeline's own: `pipeline.render.CaptchaRenderer.render(seed, split, index)` and
`pipeline.records.serialize`, so record i of a split is byte-identical to `python -m pipeline.main`'s with the same
seed and settings (the default dataset's: 4 characters of 0-9A-Z at 128x64). Shards (contiguous index ranges, written
with tf.io.TFRecordWriter, the framing Beam's writer uses) are cut for load balance, not at 64 MB, and spec.json
(written last) lists them with sha256 as pipeline/spec.py does; its `source` says `gpu_check`.

    python -m tools.gpu_check.render --out_dir=/tmp/gc/data --train_size=2000 --val_size=200 --test_size=200
"""
import argparse
import datetime
import hashlib
import json
import multiprocessing
import os
import sys
import time

SPLITS = ("train", "val", "test")
_renderer = None


def shard_name(split, shard, num_shards):
    return "%s.tfrecord-%05d-of-%05d" % (split, shard, num_shards)


def plan(sizes, workers, min_records=250):
    """[(split, shard, num_shards, start, stop)], biggest first: each split in shards of about a
    1/(2*workers) share of all records (at least `min_records`), so every worker stays busy to the end."""
    total = sum(sizes.values())
    per_shard = max(min_records, -(-total // (2 * max(1, workers))))
    tasks = []
    for split in SPLITS:
        n = sizes.get(split, 0)
        if n == 0:
            continue
        num_shards = -(-n // per_shard)
        for k in range(num_shards):
            start, stop = k * n // num_shards, (k + 1) * n // num_shards
            tasks.append((split, k, num_shards, start, stop))
    return sorted(tasks, key=lambda t: t[3] - t[4])


def render_shard(out_dir, seed, task):
    """Renders one shard's records into out_dir; returns its spec entry."""
    global _renderer
    from pipeline import records, render  # imported in the worker: TF is never imported before the fork
    import tensorflow as tf
    if _renderer is None:
        _renderer = render.CaptchaRenderer(render.RenderSettings())
    split, shard, num_shards, start, stop = task
    name = shard_name(split, shard, num_shards)
    path = os.path.join(out_dir, name)
    with tf.io.TFRecordWriter(path + ".tmp") as writer:
        for i in range(start, stop):
            writer.write(records.serialize(_renderer.render(seed, split, i)))
    os.replace(path + ".tmp", path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"split": split, "file": name, "num_records": stop - start, "num_bytes": os.path.getsize(path),
            "sha256": digest.hexdigest()}


def _work(args):
    return render_shard(*args)


def build_spec(entries, sizes, seed):
    """spec.json for the rendered shards, in pipeline/spec.py's format (format_version 1)."""
    import captcha
    import PIL
    import pipeline
    from pipeline import records, render
    settings = render.RenderSettings()
    fields = {"format_version": 1, "charset": settings.charset, "source": "gpu_check",
              "image": {"height": settings.height, "width": settings.width, "channels": 3, "encoding": "png"},
              "render": settings.describe(), "seed": seed, "sizes": sizes,
              "shards": sorted(e["file"] for e in entries),
              "versions": {"captcha": captcha.__version__, "pipeline": pipeline.__version__, "pillow": PIL.__version__}}
    identity = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    splits = {}
    for split in SPLITS:
        shards = sorted((e for e in entries if e["split"] == split), key=lambda e: e["file"])
        splits[split] = {"num_records": sum(e["num_records"] for e in shards),
                         "num_bytes": sum(e["num_bytes"] for e in shards),
                         "shards": [{k: e[k] for k in ("file", "num_records", "num_bytes", "sha256")} for e in shards]}
    return {"format_version": 1, "identity": identity, "source": "gpu_check", "charset": settings.charset,
            "label_lengths": list(range(settings.min_length, settings.max_length + 1)), "image": fields["image"],
            "features": records.FEATURES,
            "preprocessing": {"resize": "stretch", "filter": "bilinear", "antialias": True, "pad_colour": None,
                              "alpha": "white"},
            "splits": splits, "seed": seed, "render": fields["render"],
            "versions": dict(fields["versions"], apache_beam=None),
            "renderer": "tools.gpu_check.render: pipeline.render.CaptchaRenderer + pipeline.records.serialize, "
                        "no Beam",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def render_dataset(out_dir, sizes, workers=None, seed=0):
    """Renders `sizes` ({split: records}) into out_dir with `workers` processes (default: every core this process
    may run on); writes spec.json last. Returns {"records", "seconds", "records_per_s", "workers", "shards"}."""
    workers = workers or len(os.sched_getaffinity(0))
    os.makedirs(out_dir, exist_ok=True)
    tasks = plan(sizes, workers)
    started = time.perf_counter()
    # fork: the parent has not imported TF (render_shard imports it in each worker).
    with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
        entries = pool.map(_work, [(out_dir, seed, t) for t in tasks], chunksize=1)
    spec = build_spec(entries, sizes, seed)
    with open(os.path.join(out_dir, "spec.json.tmp"), "w") as f:
        json.dump(spec, f, indent=2)
    os.replace(os.path.join(out_dir, "spec.json.tmp"), os.path.join(out_dir, "spec.json"))
    seconds = time.perf_counter() - started
    records = sum(sizes.values())
    return {"records": records, "seconds": round(seconds, 2), "records_per_s": round(records / seconds, 1),
            "workers": workers, "shards": len(entries), "identity": spec["identity"],
            "bytes": sum(e["num_bytes"] for e in entries), "renderer": spec["renderer"]}


def build_parser() -> argparse.ArgumentParser:
    """This command's flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--train_size", type=int, default=200_000)
    parser.add_argument("--val_size", type=int, default=2_000)
    parser.add_argument("--test_size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=0, help="processes; 0: every core")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = {"train": args.train_size, "val": args.val_size, "test": args.test_size}
    print(json.dumps(render_dataset(args.out_dir, sizes, args.workers or None, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
