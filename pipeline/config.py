"""Command-line settings of a dataset: parsing, validation, and the shard plan.

Every other argument must be an Apache Beam pipeline option; it is left for Beam's PipelineOptions.
"""

import argparse
import dataclasses
import difflib
import functools
import re
from typing import Dict, List, Optional, Tuple

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import charsets, ingest
from pipeline.ingest import IngestSettings
from pipeline.render import DEFAULT_FONT_SIZES, RenderSettings
from pipeline.shards import SPLITS, plan_image_shards, plan_shards

VERBOSITIES = ("progress", "info", "debug")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    output_dir: str
    render: RenderSettings
    seed: int
    sizes: Dict[str, int]
    num_shards: Dict[str, int]
    overwrite: bool = False
    ingest: Optional[IngestSettings] = None  # the images source; None for synthetic captchas
    files: Tuple[Tuple[str, str], ...] = ()  # the images source's (path, label) pairs


def _int_list(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers, got %r" % text) from None


def _str_list(text: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_verbosity_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbosity", choices=VERBOSITIES, default="progress",
                        help="progress: a progress line and a summary (default); info, debug: also the "
                             "runner's logs (Beam, Dask, gRPC) and one line per shard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.main", exit_on_error=False,
        description="Render labelled captchas into sharded TFRecords and spec.json. "
                    "Other arguments are Apache Beam pipeline options (e.g. --runner).")
    parser.add_argument("--output_dir", default="data/captcha", help="dataset folder (local or gs://...)")
    parser.add_argument("--source", choices=("synthetic", "images"), default="synthetic",
                        help="synthetic: render with the captcha package; images: labelled files (--input)")
    parser.add_argument("--input", help="images source: a folder of images or a CSV/TSV labels file")
    parser.add_argument("--label_regex", help="images source: regex on the file name; group 1 is the label "
                                              "(default: the name without its extension)")
    parser.add_argument("--resize", choices=("pad", "stretch"), default="pad",
                        help="images source: keep the aspect ratio and pad (default), or stretch")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="images source")
    parser.add_argument("--test_fraction", type=float, default=0.1, help="images source")
    parser.add_argument("--train_size", type=int, default=100_000)
    parser.add_argument("--val_size", type=int, default=10_000)
    parser.add_argument("--test_size", type=int, default=10_000)
    parser.add_argument("--charset", default=None,
                        help="preset (%s) or a literal string of characters; default %s, or for the "
                             "images source the labels' characters" % (", ".join(sorted(charsets.PRESETS)),
                                                                       charsets.DEFAULT))
    parser.add_argument("--length", type=int, default=None,
                        help="characters per captcha (default 4); sets --min_length and --max_length")
    parser.add_argument("--min_length", type=int, default=None)
    parser.add_argument("--max_length", type=int, default=None)
    parser.add_argument("--width", type=int, default=None,
                        help="image width (default 128; images source: the input images' median width, or the "
                             "width that keeps their aspect ratio at --height)")
    parser.add_argument("--height", type=int, default=None,
                        help="image height (default 64; images source: the input images' median height, or the "
                             "height that keeps their aspect ratio at --width)")
    parser.add_argument("--case_insensitive", action="store_true",
                        help="fold labels and --charset to lower case (images source: for labels that disagree "
                             "with the images on case; synthetic source: each letter is drawn in either case "
                             "at random and labelled in lower case, to pre-train for such sets)")
    parser.add_argument("--fonts", type=_str_list, default=None,
                        help="comma-separated font files (default: the captcha package's own font)")
    parser.add_argument("--font_sizes", type=_int_list, default=DEFAULT_FONT_SIZES,
                        help="comma-separated font sizes in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_shards", type=int, default=0,
                        help="shards per split (capped at its record count); 0: from --shard_size_mb")
    parser.add_argument("--shard_size_mb", type=float, default=64.0, help="target shard size")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a complete dataset with other settings in --output_dir")
    add_verbosity_flag(parser)
    return parser


def _lengths(args) -> Tuple[int, int]:
    """(min, max) label length: --length sets both; otherwise each defaults to 4 or to the other."""
    if args.length is not None:
        if args.min_length not in (None, args.length) or args.max_length not in (None, args.length):
            raise ValueError("--length=%d contradicts --min_length/--max_length; give one or the other"
                             % args.length)
        return args.length, args.length
    low = args.min_length if args.min_length is not None else min(4, args.max_length or 4)
    high = args.max_length if args.max_length is not None else max(4, low)
    return low, high


def _image_size(args, sizes) -> Tuple[int, int]:
    """--width x --height of the images source; what is not given comes from the images' median size (or
    RenderSettings' default when no image can be read: then every file is rejected, and rejected.csv says why)."""
    if args.width and args.height:
        return args.width, args.height
    width, height = ingest.median_size(sizes) if sizes else (RenderSettings.width, RenderSettings.height)
    if args.width:
        return args.width, max(1, round(args.width * height / width))
    if args.height:
        return max(1, round(args.height * width / height)), args.height
    return width, height


def _images_config(args, output_dir) -> DatasetConfig:
    if not args.input:
        raise ValueError("--source=images needs --input=FOLDER or --input=LABELS.csv")
    if not (0 <= args.val_fraction and 0 <= args.test_fraction and args.val_fraction + args.test_fraction < 1):
        raise ValueError("--val_fraction and --test_fraction must be >= 0 and sum to less than 1")
    if (args.width is not None and args.width < 8) or (args.height is not None and args.height < 8):
        raise ValueError("--width and --height must be at least 8 pixels")
    try:
        files, sizes = ingest.list_labelled_files(args.input, args.label_regex, args.case_insensitive)
    except re.error as e:
        raise ValueError("--label_regex %r is not a valid regular expression: %s" % (args.label_regex, e)) from None
    except (OSError, IOError) as e:
        raise ValueError("--input %s cannot be read: %s" % (args.input, e)) from None
    width, height = _image_size(args, sizes)
    if width < 8 or height < 8:
        raise ValueError("the images are %dx%d; give --width and --height of at least 8 pixels" % (width, height))
    charset = charsets.resolve_charset(args.charset) if args.charset is not None else None
    if charset is not None and args.case_insensitive:
        charset = charsets.fold_case(charset)
    settings = IngestSettings(input=args.input, charset=charset, width=width, height=height,
                              resize=args.resize, val_fraction=args.val_fraction,
                              test_fraction=args.test_fraction, case_insensitive=args.case_insensitive)
    fractions = {"train": 1 - args.val_fraction - args.test_fraction, "val": args.val_fraction,
                 "test": args.test_fraction}
    expected = {s: round(len(files) * f) for s, f in fractions.items()}
    num_shards = plan_image_shards(expected, width, height, args.num_shards, args.shard_size_mb)
    render = RenderSettings(charset=charset or "", width=width, height=height)
    return DatasetConfig(output_dir=output_dir, render=render, seed=0, sizes=expected, num_shards=num_shards,
                         overwrite=args.overwrite, ingest=settings, files=tuple(files))


@functools.lru_cache(maxsize=1)  # built once: a sweep parses thousands of variants
def _beam_parser() -> argparse.ArgumentParser:
    """The parser that PipelineOptions builds from every imported PipelineOptions class, runners' included."""
    try:  # DaskRunner's options live in its module, which needs dask
        import apache_beam.runners.dask.dask_runner  # noqa: F401
    except ImportError:
        pass
    parsers = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    parsers[0].exit_on_error = False
    return parsers[0]


def split_args(parser: argparse.ArgumentParser, argv: Optional[List[str]], beam: bool = True):
    """Returns (`parser`'s arguments, the rest for Beam). Raises ValueError for a bad value, or for an
    argument that neither `parser` nor (with `beam`) any Beam pipeline option defines, with a close match."""
    try:
        args, rest = parser.parse_known_args(argv)
        beam_parser = _beam_parser() if beam else None
        unknown = beam_parser.parse_known_args(rest)[1] if beam else rest
    except argparse.ArgumentError as e:
        raise ValueError(str(e)) from None
    if unknown:
        flags = [f for p in (parser, beam_parser) if p for action in p._actions for f in action.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=", 1)[0], flags, n=1)
        raise ValueError("unknown argument %s (not a flag of %s%s); %s" % (
            unknown[0], parser.prog, " nor an Apache Beam pipeline option" if beam else "",
            "did you mean %s?" % close[0] if close else "see --help"))
    return args, rest


def parse(argv: Optional[List[str]]):
    """Returns (DatasetConfig, Beam arguments). Raises ValueError on a bad setting, before any work."""
    args, beam_args = split_args(build_parser(), argv)
    if args.num_shards < 0 or args.shard_size_mb <= 0:
        raise ValueError("--num_shards must be >= 0 and --shard_size_mb > 0")
    if args.source == "images":
        return _images_config(args, args.output_dir), beam_args
    sizes = {split: getattr(args, split + "_size") for split in SPLITS}
    for split, n in sizes.items():
        if n < 0:
            raise ValueError("--%s_size must be >= 0, got %d" % (split, n))
    min_length, max_length = _lengths(args)
    charset = charsets.resolve_charset(charsets.DEFAULT if args.charset is None else args.charset)
    if args.case_insensitive:
        charset = charsets.fold_case(charset)
    settings = RenderSettings(
        charset=charset, case_insensitive=args.case_insensitive,
        min_length=min_length,
        max_length=max_length, width=RenderSettings.width if args.width is None else args.width,
        height=RenderSettings.height if args.height is None else args.height,
        fonts=args.fonts or RenderSettings.fonts, font_sizes=args.font_sizes)
    settings.validate()
    config = DatasetConfig(
        output_dir=args.output_dir, render=settings, seed=args.seed, sizes=sizes,
        num_shards=plan_shards(sizes, settings, args.num_shards, args.shard_size_mb),
        overwrite=args.overwrite)
    return config, beam_args
