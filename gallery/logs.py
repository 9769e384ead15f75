"""Log lines that can be traced: each carries the request id (web) or the task id (worker), and
can be written as JSON for a log collector (LOG_FORMAT=json)."""

import contextvars
import json
import logging
import uuid
from contextlib import contextmanager

request_id = contextvars.ContextVar("request_id", default="-")
task_id = contextvars.ContextVar("task_id", default="-")


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
        return json.dumps(line, ensure_ascii=False)
