"""Log lines that can be traced: each carries the request id (web) or the task id (worker), and
can be written as JSON for a log collector (LOG_FORMAT=json).

A log line cannot be forged from outside: a path, header, name or id with a line break, an ANSI
escape or another control character is written escaped (`\\n`, `\\x1b`, `\\u2028`), in both
formats, so one record is one line (a traceback's own lines follow it, indented)."""

import contextvars
import json
import logging
import uuid
from contextlib import contextmanager

request_id = contextvars.ContextVar("request_id", default="-")
task_id = contextvars.ContextVar("task_id", default="-")


# C0 controls (line breaks, ESC, ...), DEL, C1 controls (NEL), the Unicode line and paragraph
# separators and the bidirectional overrides (which reorder what a terminal shows).
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {c: _NAMED.get(chr(c), f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}
# In JSON, json.dumps escapes C0 itself; these it leaves raw, and some readers split lines on them.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _UNSAFE if c >= 0x7F}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req %(request_id)s task %(task_id)s] %(message)s"


def escape(text):
    """`text` on one line, every control character shown as an escape."""
    return str(text).translate(_ESCAPES)


def new_request_id(offered=""):
    """The proxy's X-Request-ID when it looks like one, else a fresh id."""
    if offered and len(offered) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in offered):
        return offered
    return uuid.uuid4().hex[:16]


@contextmanager
def working_on(task):
    """Every log line inside names this task."""
    token = task_id.set(str(task))
    try:
        yield
    finally:
        task_id.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record):
        record.request_id = request_id.get()
        record.task_id = task_id.get()
        return True


class TextFormatter(logging.Formatter):
    """The text format: the message and every field escaped onto one line; a traceback (or stack)
    follows on lines of its own, indented, so a line break inside an exception's message cannot
    start a line that looks like a record."""

    def __init__(self, fmt=TEXT_FORMAT, datefmt=None, style="%", validate=True, **kwargs):
        super().__init__(fmt, datefmt, style, validate, **kwargs)

    def format(self, record):
        # A copy: other handlers (pytest's caplog, a second handler) see the record as it was.
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args, safe.exc_text = escape(record.getMessage()), None, None
        for name in ("name", "levelname", "request_id", "task_id"):
            if isinstance(getattr(safe, name, None), str):
                setattr(safe, name, escape(getattr(safe, name)))
        return super().format(safe)

    def formatException(self, ei):
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info):
        return _indented(super().formatStack(stack_info))


def _indented(text):
    """Multi-line text (a traceback): its own line breaks kept, every other control character
    escaped, each line indented so none can pass for a record of its own."""
    return "\n".join("    " + escape(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "task_id": getattr(record, "task_id", "-"),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        # json.dumps writes C0 (line breaks, ESC) as \u000a…; C1 and U+2028/2029 are escaped here.
        return json.dumps(line, ensure_ascii=False).translate(_JSON_ESCAPES)
