"""Log injection (issue 21): nothing a request carries can write a line of its own into the log.
Each test drives requests through the real logging configuration — the console handler and the
project's formatters (text and JSON) — writing to a buffer, and reads the lines back.

Re-run: SECRET_KEY=x .venv/bin/python -m pytest tests/gallery/test_logs.py
"""

import io
import json
import logging
import re
from contextlib import contextmanager
from logging.config import DictConfigurator

from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path

from gallery import logs

# A line break, a carriage return, an ANSI colour, U+2028 and NEL (C1), in a task id of the path.
FORGED_PATH = "/v1/tasks/x%0A19:99:99 web.1 | 2025-01-01 ERROR gallery FORGED%0Dover%1B[31mred%E2%80%A8sep%C2%85nel"
FORGED_TEXT = "x\n19:99:99 web.1 | 2025-01-01 ERROR gallery FORGED\rover\x1b[31mred\u2028sep\x85nel"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
# What Python's str.splitlines (and many log shippers) take for a line break.
LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def boom(request):
    raise RuntimeError(f"no such thing: {request.GET.get('name', '')}")


def fine(request):
    logging.getLogger("gallery.views").warning("Looked up %s for %r", request.GET.get("name", ""), request.GET.get("who"))
    return HttpResponse("ok")


urlpatterns = [path("boom/", boom), path("fine/", fine), path("", include("seedream_site.urls"))]


@contextmanager
def console(log_format="text"):
    """The configured console handler (LOGGING in settings), writing into a buffer, with the
    formatter LOGGING defines for `log_format` (LOG_FORMAT)."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer, old_formatter = io.StringIO(), handler.formatter
    old_stream = handler.setStream(buffer)
    handler.setFormatter(DictConfigurator({}).configure_formatter(dict(settings.LOGGING["formatters"][log_format])))
    try:
        yield buffer
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)


def test_the_text_format_escapes_a_forged_line_in_an_api_path(api):
    with console("text") as buffer:
        response = api.get(FORGED_PATH)
    assert response.status_code == 404
    written = buffer.getvalue()
    lines = written.split("\n")[:-1]
    assert lines and all(RECORD_START.match(line) for line in lines), written
    assert not any(line.startswith("19:99:99") for line in lines)
    assert not LINE_BREAKS.search(written.replace("\n", "")) and "\x1b" not in written
    [line] = [line for line in lines if "FORGED" in line]  # one record, one line
    assert "API GET /v1/tasks/x\\n19:99:99 web.1 | 2025-01-01 ERROR gallery FORGED\\rover\\x1b[31mred\\u2028sep\\x85nel" in line


def test_the_json_format_keeps_a_forged_line_inside_its_one_object(api):
    with console("json") as buffer:
        response = api.get(FORGED_PATH)
    assert response.status_code == 404
    written = buffer.getvalue()
    assert written.endswith("\n") and not LINE_BREAKS.search(written[:-1].replace("\n", ""))
    assert "\x1b" not in written and "\\u2028" in written and "\\u0085" in written
    records = [json.loads(line) for line in written.splitlines()]  # splitlines: U+2028 and NEL split too
    [record] = [r for r in records if "FORGED" in r["message"]]
    assert record["message"].startswith(f"API GET /v1/tasks/{FORGED_TEXT}:")  # the value itself, unchanged
    assert record["logger"] == "gallery.api.auth" and record["level"] == "INFO"


def test_messages_with_arguments_from_a_request_are_escaped(settings, alice):
    settings.ROOT_URLCONF = __name__
    with console() as buffer:
        Client().get("/fine/", {"name": "bob\n2025-01-01 00:00:00,000 ERROR gallery admin signed in", "who": "\x1b]0;x\x07"})
    [line] = buffer.getvalue().splitlines()
    assert line.endswith("Looked up bob\\n2025-01-01 00:00:00,000 ERROR gallery admin signed in for '\\x1b]0;x\\x07'")


def test_a_traceback_keeps_its_lines_and_a_forged_line_in_the_exception_stays_indented(settings, alice):
    """The 500's record: Django's "Internal Server Error: <path>" on one line, then the traceback,
    every line of it indented, including a line break inside the exception's message."""
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    with console() as buffer:
        Client(raise_request_exception=False).get("/boom/", {"name": "x\n2025-01-01 00:00:00,000 ERROR FORGED\u2028y"})
    lines = buffer.getvalue().split("\n")[:-1]
    assert RECORD_START.match(lines[0]) and "Internal Server Error: /boom/" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-2:] == ["    RuntimeError: no such thing: x", "    2025-01-01 00:00:00,000 ERROR FORGED\\u2028y"]
    assert sum(bool(RECORD_START.match(line)) for line in lines) == 1


def test_escape_shows_every_control_character_and_leaves_text_alone():
    assert logs.escape("café ☕ «ok» \\ / 漢字") == "café ☕ «ok» \\ / 漢字"
    assert logs.escape("a\r\nb\tc\x00d\x7fe\x9bf\u2029g\u202eh") == "a\\r\\nb\\tc\\x00d\\x7fe\\x9bf\\u2029g\\u202eh"
