"""Deterministic captcha rendering: record i of a split is a pure function of (seed, split, i, settings).

The images are `captcha.image.ImageCaptcha.generate_image`'s own: same fonts, sizes, warps, noise and
colours. captcha 0.7.0 draws every random number from the module-level `random` of `captcha.image`;
we replace that module reference by a proxy that forwards to a `random.Random` owned by the calling
thread, seeded per record, so threads that share the module (Beam's multi-threaded mode) never share
a random stream. Code that calls ImageCaptcha outside `render` still gets the global `random`.

    python -c "from pipeline.render import *; r = CaptchaRenderer(RenderSettings()); print(r.render(0, 'train', 0).text)"
"""

import dataclasses
import functools
import hashlib
import io
import os
import random
import threading
from typing import Tuple

import captcha
import captcha.image
from fontTools.ttLib import TTFont
from PIL import ImageFont

DEFAULT_FONT_SIZES = (42, 50, 56)  # ImageCaptcha's own default
MIN_PIXELS_PER_CHAR = 8
MIN_HEIGHT = 16


class _ThreadLocalRandom:
    """Stands in for the `random` module inside captcha.image; each thread draws from its own stream."""

    def __init__(self):
        self._local = threading.local()

    def use(self, rng):
        self._local.rng = rng

    def __getattr__(self, name):
        return getattr(getattr(self._local, "rng", None) or random, name)


_RANDOM = _ThreadLocalRandom()
captcha.image.random = _RANDOM


@functools.lru_cache(maxsize=64)
def font_digest(path: str) -> str:
    """The sha256 of the font file at `path` (read once a process: a sweep describes thousands of variants)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@functools.lru_cache(maxsize=64)
def font_characters(path: str) -> frozenset:
    """The characters that the font file at `path` has a glyph for (its best cmap table)."""
    with TTFont(path, lazy=True) as font:
        return frozenset(map(chr, font.getBestCmap() or {}))


def missing_glyphs(path: str, characters: str) -> list:
    """The characters of `characters` (white space aside) that the font at `path` cannot draw, in order."""
    try:
        known = font_characters(path)
    except Exception:  # fontTools could not read its tables though Pillow loaded it: leave the check to Pillow
        return []
    return [c for c in dict.fromkeys(characters) if not c.isspace() and c not in known]


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """Everything that decides how a record looks."""
    charset: str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    min_length: int = 4
    max_length: int = 4
    width: int = 128
    height: int = 64
    fonts: Tuple[str, ...] = tuple(captcha.image.DEFAULT_FONTS)
    font_sizes: Tuple[int, ...] = DEFAULT_FONT_SIZES
    case_insensitive: bool = False  # labels in the (lower-case) charset, each letter drawn in either case

    def validate(self):
        """Raises ValueError with a one-line message naming the bad setting."""
        if self.min_length < 1:
            raise ValueError("--length/--min_length must be at least 1, got %d" % self.min_length)
        if self.max_length < self.min_length:
            raise ValueError("--max_length (%d) is smaller than --min_length (%d)"
                             % (self.max_length, self.min_length))
        if self.height < MIN_HEIGHT:
            raise ValueError("--height must be at least %d pixels, got %d" % (MIN_HEIGHT, self.height))
        if self.width < MIN_PIXELS_PER_CHAR * self.max_length:
            raise ValueError("--width=%d is too small for %d characters: need at least %d pixels "
                             "(%d per character)" % (self.width, self.max_length,
                                                    MIN_PIXELS_PER_CHAR * self.max_length,
                                                    MIN_PIXELS_PER_CHAR))
        if not self.font_sizes or min(self.font_sizes) < 1:
            raise ValueError("--font_sizes must be positive integers, got %r" % (self.font_sizes,))
        if not self.fonts:
            raise ValueError("--fonts is empty")
        if self.case_insensitive and self.charset != self.charset.lower():
            raise ValueError("case-insensitive rendering needs a lower-case charset, got %r" % self.charset)
        for path in self.fonts:
            try:
                ImageFont.truetype(path, self.font_sizes[0])
            except OSError as e:
                raise ValueError("font %s cannot be loaded: %s" % (path, e)) from None
            missing = missing_glyphs(path, self.drawn_characters())
            if missing:
                raise ValueError("font %s has no glyph for %d character(s) of --charset: %s; it would draw them as "
                                 "empty boxes: give --fonts that draw every character, or another --charset" % (
                                     os.path.basename(path), len(missing), "".join(missing[:20])))

    def drawn_characters(self) -> str:
        """The characters a render may draw: the charset's, and their upper case when case-insensitive."""
        return self.charset + (self.charset.upper() if self.case_insensitive else "")

    def describe(self) -> dict:
        """Settings as JSON-ready data; fonts by file name and sha256, so paths don't matter."""
        fonts = [{"file": path.replace("\\", "/").rsplit("/", 1)[-1], "sha256": font_digest(path)}
                 for path in self.fonts]
        described = {"generator": "captcha.image.ImageCaptcha.generate_image",
                     "captcha_version": captcha.__version__,
                     "fonts": fonts, "font_sizes": list(self.font_sizes),
                     "min_length": self.min_length, "max_length": self.max_length}
        if self.case_insensitive:  # only when set: the identities of datasets rendered before stay the same
            described["case_insensitive"] = True
        return described


@dataclasses.dataclass(frozen=True)
class Record:
    index: int
    text: str
    label: Tuple[int, ...]
    png: bytes


def record_rng(seed: int, split: str, index: int) -> random.Random:
    """The random stream of one record; str seeds go through sha512, stable across processes."""
    return random.Random("captcha-record/%d/%s/%d" % (seed, split, index))


class CaptchaRenderer:
    """Renders records; one instance per thread or DoFn (ImageCaptcha caches its fonts)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self._captcha = captcha.image.ImageCaptcha(
            width=settings.width, height=settings.height,
            fonts=list(settings.fonts), font_sizes=tuple(settings.font_sizes))
        self._index = {c: i for i, c in enumerate(settings.charset)}

    def render(self, seed: int, split: str, index: int) -> Record:
        s = self.settings
        rng = record_rng(seed, split, index)
        length = rng.randint(s.min_length, s.max_length)
        text = "".join(rng.choice(s.charset) for _ in range(length))
        drawn = "".join(rng.choice((c, c.upper())) for c in text) if s.case_insensitive else text
        _RANDOM.use(rng)
        try:
            image = self._captcha.generate_image(drawn)
        finally:
            _RANDOM.use(None)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Record(index, text, tuple(self._index[c] for c in text), buffer.getvalue())
