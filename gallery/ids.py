"""Ids that arrive from outside (URLs, forms, query strings), parsed in one place.

`str.isdigit()` accepts "²" and "٣", and a 23-digit number overflows SQLite's integers: both used
to end in a 500. Here an id is ASCII digits within the database's 64-bit range, or nothing.
"""

MAX_ID = 2**63 - 1
MAX_DIGITS = len(str(MAX_ID))


def parse_id(value):
    """The positive integer id `value` spells, or None for anything else."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else ""
    if not (0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def parse_ids(values):
    """The ids among `values`, in order, without repeats; None if any value is not an id."""
    ids = [parse_id(value) for value in values]
    if None in ids:
        return None
    return list(dict.fromkeys(ids))


class IdConverter:
    """`<id:name>` in URL patterns: a hostile id is a 404 like any unknown one."""

    regex = f"[0-9]{{1,{MAX_DIGITS}}}"

    def to_python(self, value):
        number = parse_id(value)
        if number is None:
            raise ValueError("not an id")
        return number

    def to_url(self, value):
        return str(value)
