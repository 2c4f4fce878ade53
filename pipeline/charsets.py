"""Named character sets, and the check that a charset is usable for labels."""

import string

PRESETS = {
    "digits": string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "alnum_upper": string.digits + string.ascii_uppercase,  # the seed's 36 characters
    "alnum_lower": string.digits + string.ascii_lowercase,
    "alnum": string.digits + string.ascii_uppercase + string.ascii_lowercase,
    "hex": string.digits + "ABCDEF",
}

DEFAULT = "alnum_upper"


def fold_case(charset: str) -> str:
    """The charset in lower case, each character once in first-seen order ("0aA" -> "0a")."""
    return "".join(dict.fromkeys(charset.lower()))


def resolve_charset(value: str) -> str:
    """Returns the characters of a preset name, or `value` itself as a literal charset.

    Raises ValueError for an empty charset, repeated characters or whitespace.
    """
    charset = PRESETS.get(value, value)
    if not charset:
        raise ValueError("--charset is empty; give a preset (%s) or a literal string of characters"
                         % ", ".join(sorted(PRESETS)))
    repeated = sorted({c for c in charset if charset.count(c) > 1})
    if repeated:
        raise ValueError("--charset repeats characters %r; each character may appear once"
                         % "".join(repeated))
    blank = [c for c in charset if c.isspace() or not c.isprintable()]
    if blank:
        raise ValueError("--charset contains whitespace or control characters %r, which captcha "
                         "draws as blank space" % "".join(blank))
    return charset
