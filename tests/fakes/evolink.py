"""A fake EvoLink on a real loopback socket: the documented shapes of SPEC §7, result images
served from itself, a record of what the studio sent, and faults on demand.

In tests:   with FakeEvoLink() as fake: fake.use_in(settings); …
On its own: python -m tests.fakes.evolink --port 9100   (prints the settings for `make run`)

Faults, per route ("create", "get", "credits", "upload", "delete", "result"):
    fake.fault(route, action, times=1, **options)    times=None: every request from now on
  actions: an HTTP status (the documented error body; retry_after="7" adds the header;
  message=… replaces the text), "slow" (answers after fake.slow_seconds), "hold" (answers once
  the test sets the threading.Event given as until=…), "drop" (closes the
  connection unanswered), "garbage" (200 with a body that is not JSON); for "upload" also
  "quota" (the file service's full-account error); for "result" also "expired" (404),
  "truncated", "huge" (an endless body), "bomb" (a decompression bomb), "wrong-type" (HTML),
  "redirect" (via=[301, 302, 307]: a chain of those redirects ending at the image, as CDNs do),
  "redirect-loop" (two URLs redirecting to each other), "redirect-html" (a redirect to an HTML
  page), "redirect-to" (location=…: a redirect to any address).
Per task, markers in the prompt (they work when run on its own too):
  [evolink:polls=K] completes at the K-th status check (default fake.polls)
  [evolink:fail=CODE] fails with that error code; [evolink:fail] fails without an `error` object
  [evolink:fail-once=CODE] the first task with this prompt fails with CODE, later ones succeed
  [evolink:fewer=K] produces only K images; [evolink:http=STATUS] creating answers that status
"""

import argparse
import email.parser
import email.policy
import io
import json
import re
import secrets
import socket
import time
import zlib
from collections import deque
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from gallery import options
from tests.fakes.server import FakeServer, Received  # noqa: F401 (Received: for tests)

CREDITS_PER_IMAGE = 1.6


def markers(prompt, prefix):
    """{name: value} of the `[prefix:name=value]` markers in a prompt."""
    found = re.findall(rf"\[{prefix}:([\w-]+)(?:=([\w.]+))?\]", prompt if isinstance(prompt, str) else "")
    return dict(found)


def render_png(width, height, label, image_format="png", transparent=False):
    """A real image of that size (PNG unless asked for JPEG): a colour from the label and the
    label written on it; a transparent one has a clear border around the picture."""
    colour = tuple(zlib.crc32(label.encode()).to_bytes(4, "big")[:3])
    image = Image.new("RGBA" if transparent else "RGB", (width, height), (*colour, 255) if transparent else colour)
    draw = ImageDraw.Draw(image)
    if transparent:
        draw.rectangle((0, 0, width - 1, height - 1), outline=(0, 0, 0, 0), width=max(1, min(width, height) // 8))
    draw.text((10 + (min(width, height) // 8 if transparent else 0),) * 2, label, fill="white")
    out = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(out, "JPEG", quality=80)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def bomb_png():
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, "PNG")  # a few kB on the wire, 144 M pixels decoded
    return out.getvalue()


class FakeUpstream(FakeServer):
    """The record, the faults and the result images of a fake upstream; subclasses add the API."""

    def __init__(self, port=0, api_key="sk-fake"):
        super().__init__(port)
        self.api_key = api_key
        self.faults = {}
        self.always = {}
        self.slow_seconds = 2.0
        self.images = {}
        self._pngs = {}

    # Faults ---------------------------------------------------------------------------------

    def fault(self, route, action, times=1, **options):
        with self.lock:
            if times is None:
                self.always[route] = {"action": action, **options}
            else:
                self.faults.setdefault(route, deque()).extend({"action": action, **options} for _ in range(times))

    def clear_faults(self):
        with self.lock:
            self.faults.clear()
            self.always.clear()

    def take_fault(self, route):
        with self.lock:
            queue = self.faults.get(route)
            return queue.popleft() if queue else self.always.get(route)

    def apply_fault(self, handler, fault, route, request):
        """Answers as the fault says; False when the normal answer should follow (slow)."""
        action = fault["action"]
        if isinstance(action, int):
            headers = {"Retry-After": fault["retry_after"]} if fault.get("retry_after") else {}
            self.send_json(handler, action, self.error_body(action, route, **fault), headers)
        elif action == "slow":
            time.sleep(fault.get("seconds", self.slow_seconds))
            return False
        elif action == "hold":
            fault["until"].wait(timeout=30)
            return False
        elif action == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        elif action == "garbage":
            self.send(handler, 200, b'{"id": "task-unified-', "application/json")
        elif route == "result":
            self.result_fault(handler, action, request, fault)
        else:
            raise ValueError(f"unknown fault {action!r} for {route}")
        return True

    def result_fault(self, handler, action, request, fault=None):
        name = urlsplit(request.path).path.rsplit("/", 1)[-1]
        if action == "redirect":
            via = list((fault or {}).get("via", [301, 302, 307]))
            pad = int((fault or {}).get("page_bytes", 256))
            self.redirect(handler, via[0], f"/hops/{','.join(map(str, via[1:]))}/{name}?page={pad}", pad)
        elif action == "redirect-loop":
            self.redirect(handler, 302, f"/loop/a/{name}")
        elif action == "redirect-html":
            self.redirect(handler, 302, "/pages/link-expired")
        elif action == "redirect-to":
            self.redirect(handler, 302, fault["location"])
        elif action == "expired":
            self.send(handler, 404, b"Not Found", "text/plain")
        elif action == "truncated":
            self.send(handler, 200, self.png_for(request)[:300], "image/png")
        elif action == "bomb":
            self.send(handler, 200, bomb_png(), "image/png")
        elif action == "wrong-type":
            self.send(handler, 200, b"<html><body>Expired</body></html>", "text/html")
        elif action == "huge":
            handler.send_response(200)
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Content-Length", str(1024**3))
            handler.end_headers()
            for _ in range(1024):
                handler.wfile.write(b"\0" * 1024 * 1024)
        else:
            raise ValueError(f"unknown result fault {action!r}")

    # Plumbing -------------------------------------------------------------------------------

    def api_routes(self):
        """(method, path pattern, route name, needs the key, function)."""
        return [
            ("GET", r"/results/([\w.-]+)", "result", False, self.serve_result),
            ("GET", r"/hops/([\d,]*)/([\w.-]+)", "hop", False, self.serve_hop),
            ("GET", r"/loop/(a|b)/([\w.-]+)", "loop", False, self.serve_loop),
            ("GET", r"/pages/([\w-]+)", "page", False, self.serve_page),
        ]

    def dispatch(self, handler, request):
        path = urlsplit(request.path).path
        for method, pattern, route, needs_key, function in self.api_routes():
            match = re.fullmatch(pattern, path)
            if not match or method != request.method:
                continue
            fault = self.take_fault(route)
            if fault and self.apply_fault(handler, fault, route, request):
                return
            if needs_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                self.send_json(handler, 401, self.error_body(401, route))
                return
            function(handler, request, *match.groups())
            return
        self.send_json(handler, 404, self.error_body(404, "", message="No such route."))

    def error_body(self, status, route, **options):
        raise NotImplementedError

    def send(self, handler, status, body, content_type, headers=None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def send_json(self, handler, status, data, headers=None):
        self.send(handler, status, json.dumps(data).encode(), "application/json", headers)

    # Result images --------------------------------------------------------------------------

    def add_result(self, width, height, label, image_format="png", transparent=False):
        name = f"{secrets.token_hex(8)}.{'jpeg' if image_format == 'jpeg' else 'png'}"
        with self.lock:
            self.images[name] = (width, height, label, image_format, transparent)
        return f"{self.url}/results/{name}"

    def png_for(self, request):
        name = urlsplit(request.path).path.rsplit("/", 1)[-1]
        with self.lock:
            if name not in self._pngs and name in self.images:
                self._pngs[name] = render_png(*self.images[name])
            return self._pngs.get(name)

    def redirect(self, handler, status, location, page_bytes=256):
        # CDNs send a small page with their redirects; page_bytes long here, so tests can count them.
        body = f"<html><body>Moved to {location}</body></html>".encode().ljust(page_bytes)
        self.send(handler, status, body, "text/html", {"Location": location})

    def serve_hop(self, handler, request, statuses, name):
        """One hop of a redirect chain: the next status in the list, or the image itself."""
        rest = [int(s) for s in statuses.split(",") if s]
        pad = int(re.search(r"page=(\d+)", request.path).group(1)) if "page=" in request.path else 256
        if rest:
            self.redirect(handler, rest[0], f"/hops/{','.join(map(str, rest[1:]))}/{name}?page={pad}", pad)
        else:
            self.serve_result(handler, request, name)  # the last hop answers with the image

    def serve_loop(self, handler, request, side, name):
        self.redirect(handler, 302, f"/loop/{'b' if side == 'a' else 'a'}/{name}")

    def serve_page(self, handler, request, page):
        self.send(handler, 200, b"<html><body>This link has expired.</body></html>", "text/html")

    def serve_result(self, handler, request, name):
        data = self.png_for(request)
        if data is None:
            self.send(handler, 404, b"Not Found", "text/plain")
        else:
            self.send(handler, 200, data, "image/jpeg" if name.endswith(".jpeg") else "image/png")


# What EvoLink's API reference (2026) says each model accepts, written here apart from the
# studio's own table (gallery/catalog.py) so a mistake there shows as a 400 here.
MODEL_RULES = {
    "doubao-seedream-4.0": {"qualities": {"1K", "2K", "4K"}, "default": "2K", "pixels": (921_600, 16_777_216),
                            "priorities": {"standard", "fast"}, "prompt": 2000, "n": True, "params": set()},
    "doubao-seedream-4.5": {"qualities": {"2K", "4K"}, "default": "2K", "pixels": (3_686_400, 16_777_216),
                            "priorities": {"standard"}, "prompt": 2000, "n": True, "params": set()},
    "doubao-seedream-5.0-lite": {"qualities": {"2K", "3K"}, "default": "2K", "pixels": (3_686_400, 9_437_184),
                                 "priorities": {"standard"}, "prompt": 2000, "n": True,
                                 "params": {"output_format", "tools"}},
    "doubao-seedream-5.0-pro": {"qualities": {"1K", "1.5K", "2K"}, "default": "1K", "pixels": (921_600, 4_624_220),
                                "priorities": {"standard", "fast"}, "prompt": 4000, "n": False,
                                "params": {"output_format", "watermark", "background"}},
}
FAKE_RATIOS = {"auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "9:21"}


def output_size(size, quality):
    if re.fullmatch(r"\d+x\d+", size or ""):
        width, height = size.split("x")
        return int(width), int(height)
    return options.pixel_size("1:1" if size == "auto" else size, quality or "2K")


class FakeEvoLink(FakeUpstream):
    ERRORS = {
        400: ("invalid_request_error", "Invalid request."),
        401: ("authentication_error", "Invalid API key."),
        402: ("insufficient_quota_error", "Insufficient credits."),
        403: ("permission_error", "Permission denied."),
        404: ("not_found_error", "Not found."),
        413: ("request_too_large_error", "Request too large."),
        429: ("rate_limit_error", "Rate limit exceeded."),
        500: ("internal_server_error", "Internal server error."),
        502: ("upstream_error", "Upstream error."),
        503: ("service_unavailable_error", "Service unavailable."),
    }
    FILE_ROUTES = {"upload", "delete"}

    def __init__(self, port=0, api_key="sk-evo-fake"):
        super().__init__(port, api_key)
        self.polls = 2
        self.credits = 1000.0
        self.used = 0.0
        self.max_files = 100
        self.tasks = {}
        self.prompts = set()
        self.files = {}
        self.uploads = []  # what the file service received: file_id, name, content_type, data
        self.deleted = []

    def use_in(self, settings):
        settings.EVOLINK_API_KEY = self.api_key
        settings.EVOLINK_BASE_URL = self.url
        settings.EVOLINK_FILES_URL = self.url

    @property
    def created(self):
        """The JSON bodies the studio sent to create tasks."""
        return [r.json for r in self.received if r.method == "POST" and r.path == "/v1/images/generations"]

    def calls(self, route_path):
        return [r for r in self.received if urlsplit(r.path).path.startswith(route_path)]

    def api_routes(self):
        return [
            ("POST", r"/v1/images/generations", "create", True, self.create),
            ("GET", r"/v1/tasks/([^/]+)", "get", True, self.get),
            ("GET", r"/v1/credits", "credits", True, self.get_credits),
            ("POST", r"/api/v1/files/upload/stream", "upload", True, self.upload),
            ("DELETE", r"/api/v1/files/([^/]+)", "delete", True, self.delete),
            ("GET", r"/files/([\w-]+)", "file", False, self.download),
            *super().api_routes(),
        ]

    def error_body(self, status, route, message=None, param=None, **_):
        kind, default = self.ERRORS.get(status, ("internal_server_error", f"HTTP {status}"))
        if route in self.FILE_ROUTES:
            return {"success": False, "code": status, "msg": message or default}
        error = {"code": status, "message": message or default, "type": kind}
        if param:
            error["param"] = param
        return {"error": error}

    def apply_fault(self, handler, fault, route, request):
        if fault["action"] == "quota":
            self.send_json(handler, 403, self.quota_body())
            return True
        return super().apply_fault(handler, fault, route, request)

    def quota_body(self):
        return {"success": False, "code": 403, "msg": f"File quota exceeded: at most {self.max_files} files per account."}

    # Tasks ----------------------------------------------------------------------------------

    def create(self, handler, request):
        body = request.json
        problem = self.invalid(body) if isinstance(body, dict) else ("The body must be a JSON object.", None)
        if problem:
            self.send_json(handler, 400, self.error_body(400, "create", message=problem[0], param=problem[1]))
            return
        found = markers(body["prompt"], "evolink")
        if found.get("http", "").isdigit():
            status = int(found["http"])
            self.send_json(handler, status, self.error_body(status, "create"))
            return
        n = body.get("n", 1)
        with self.lock:
            if self.credits < CREDITS_PER_IMAGE * n:
                self.send_json(handler, 402, self.error_body(402, "create"))
                return
        now = int(time.time())
        task = {
            "id": f"task-unified-{now}-{secrets.token_hex(4)}",
            "created": now,
            "n": n,
            "count": min(n, int(found["fewer"])) if found.get("fewer", "").isdigit() else n,
            "model": body["model"],
            "size": output_size(body["size"], body.get("quality", MODEL_RULES[body["model"]]["default"])),
            "format": body.get("model_params", {}).get("output_format", "png"),
            "transparent": body.get("model_params", {}).get("background") == "transparent",
            "polls": int(found["polls"]) if found.get("polls", "").isdigit() else self.polls,
            # None: succeeds; "": fails without an error object
            "fail": found.get("fail", found.get("fail-once") if body["prompt"] not in self.prompts else None),
            "checks": 0,
            "results": None,
        }
        with self.lock:
            self.tasks[task["id"]] = task
            self.prompts.add(body["prompt"])
        self.send_json(handler, 200, self.task_object(task))

    def invalid(self, body):
        """(message, param) of the first documented rule the body breaks, or None."""
        prompt, urls = body.get("prompt"), body.get("image_urls", [])
        rules = MODEL_RULES.get(body.get("model"))
        if rules is None:
            return f"Unknown model {body.get('model')!r}.", "model"
        model = body["model"]
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > rules["prompt"]:
            return f"prompt must be 1 to {rules['prompt']} characters for {model}.", "prompt"
        if not rules["n"]:
            if "n" in body:
                return f"{model} generates one image per request and does not take n.", "n"
        elif not isinstance(body.get("n"), int) or not 1 <= body["n"] <= 15:
            return "n must be between 1 and 15.", "n"
        elif body["n"] + len(urls if isinstance(urls, list) else []) > 15:
            return "image_urls plus n must be at most 15.", "n"
        size = str(body.get("size"))
        if match := re.fullmatch(r"(\d+)x(\d+)", size):
            low, high = rules["pixels"]
            if not low <= int(match[1]) * int(match[2]) <= high:
                return f"size must have {low} to {high} pixels for {model}.", "size"
        elif size not in FAKE_RATIOS:
            return "size must be a ratio or WIDTHxHEIGHT.", "size"
        if body.get("quality", rules["default"]) not in rules["qualities"]:
            return f"quality must be one of {sorted(rules['qualities'])} for {model}.", "quality"
        if body.get("prompt_priority", "standard") not in rules["priorities"]:
            return f"prompt_priority must be one of {sorted(rules['priorities'])} for {model}.", "prompt_priority"
        params = body.get("model_params", {})
        if not isinstance(params, dict) or set(params) - rules["params"]:
            return f"model_params of {model} take only {sorted(rules['params'])}.", "model_params"
        if params.get("output_format", "png") not in ("png", "jpeg"):
            return "model_params.output_format must be png or jpeg.", "model_params.output_format"
        if params.get("tools", [{"type": "web_search"}]) != [{"type": "web_search"}]:
            return "model_params.tools takes [{\"type\": \"web_search\"}].", "model_params.tools"
        if not isinstance(params.get("watermark", False), bool):
            return "model_params.watermark must be a boolean.", "model_params.watermark"
        if params.get("background", "opaque") not in ("opaque", "transparent"):
            return "model_params.background must be opaque or transparent.", "model_params.background"
        if params.get("background") == "transparent" and (not isinstance(urls, list) or len(urls) != 1):
            return "A transparent background needs exactly one PNG image in image_urls.", "model_params.background"
        if not isinstance(urls, list) or len(urls) > 10:
            return "image_urls takes at most 10 URLs.", "image_urls"
        with self.lock:
            live = {f["file_url"] for f in self.files.values() if not f["deleted"]}
        for index, url in enumerate(urls):
            if url not in live:
                return f"image_urls[{index}] could not be downloaded.", f"image_urls[{index}]"
        if "callback_url" in body and not str(body["callback_url"]).startswith("https://"):
            return "callback_url must be an HTTPS URL.", "callback_url"
        return None

    def get(self, handler, request, task_id):
        with self.lock:
            task = self.tasks.get(task_id)
            if task:
                task["checks"] += 1
        if task is None:
            self.send_json(handler, 404, self.error_body(404, "get", message="Task not found."))
        else:
            self.send_json(handler, 200, self.task_object(task))

    def task_object(self, task):
        obj = {
            "created": task["created"],
            "id": task["id"],
            "model": task.get("model", "doubao-seedream-4.0"),
            "object": "image.generation.task",
            "progress": 0,
            "status": "pending",
            "task_info": {"can_cancel": True, "estimated_time": 45},
            "type": "image",
            "usage": {"billing_rule": "per_call", "credits_reserved": round(CREDITS_PER_IMAGE * task["n"], 2), "user_group": "default"},
        }
        if task["checks"] == 0:
            return obj
        if task["checks"] < task["polls"]:
            return {**obj, "status": "processing", "progress": 100 * task["checks"] // task["polls"]}
        if task["fail"] is not None:
            obj.update(status="failed", progress=100)
            if task["fail"]:
                obj["error"] = {"code": task["fail"], "message": f"Task failed: {task['fail']}"}
            return obj
        with self.lock:
            if task["results"] is None:
                width, height = task["size"]
                task["results"] = [
                    self.add_result(width, height, f"fake evolink {task['model']} {task['id']} #{k}",
                                    task["format"], task["transparent"])
                    for k in range(task["count"])
                ]
                self.credits -= CREDITS_PER_IMAGE * task["count"]
                self.used += CREDITS_PER_IMAGE * task["count"]
        return {**obj, "status": "completed", "progress": 100, "results": list(task["results"])}

    def get_credits(self, handler, request):
        with self.lock:
            user = {"remaining_credits": round(self.credits, 4), "used_credits": round(self.used, 4)}
        token = {"remaining_credits": 99416.4429, "unlimited_credits": True, "used_credits": user["used_credits"]}
        self.send_json(handler, 200, {"data": {"token": token, "user": user}, "message": "", "success": True})

    # The file service -----------------------------------------------------------------------

    def upload(self, handler, request):
        parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        if "file" not in parts:
            self.send_json(handler, 400, self.error_body(400, "upload", message="file is required"))
            return
        with self.lock:
            if sum(not f["deleted"] for f in self.files.values()) >= self.max_files:
                self.send_json(handler, 403, self.quota_body())
                return
            file_id = f"file_{secrets.token_hex(8)}"
            part = parts["file"]
            stored = {
                "file_id": file_id,
                "name": part["filename"],
                "content_type": part["content_type"],
                "data": part["data"],
                "file_url": f"{self.url}/files/{file_id}",
                "deleted": False,
            }
            self.files[file_id] = stored
            self.uploads.append(stored)
        data = {
            "file_id": file_id,
            "file_name": f"{file_id}.bin",
            "original_name": part["filename"],
            "file_size": len(part["data"]),
            "mime_type": part["content_type"],
            "upload_path": "images",
            "file_url": stored["file_url"],
            "download_url": stored["file_url"],
            "upload_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 72 * 3600)),
        }
        self.send_json(handler, 200, {"success": True, "code": 200, "msg": "File uploaded", "data": data})

    def delete(self, handler, request, file_id):
        with self.lock:
            found = self.files.get(file_id)
            if found and not found["deleted"]:
                found["deleted"] = True
                self.deleted.append(file_id)
        if found:
            self.send_json(handler, 200, {"success": True, "code": 200, "msg": "File deleted"})
        else:
            self.send_json(handler, 404, self.error_body(404, "delete", message="File not found"))

    def download(self, handler, request, file_id):
        found = self.files.get(file_id)
        if not found or found["deleted"]:
            self.send(handler, 404, b"Not Found", "text/plain")
        else:
            self.send(handler, 200, found["data"], found["content_type"])


def parse_multipart(content_type, body):
    """{field name: {filename, content_type, data}} of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return {}
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "data": part.get_payload(decode=True),
        }
    return parts


def serve(fake, names):
    """Runs a fake in the foreground until Ctrl+C, recording nothing (memory stays flat)."""
    fake.record = False
    settings = " ".join(f"{name}={value}" for name, value in names.items())
    print(f"{fake.__class__.__name__} listening on {fake.url}\nStart the studio with:\n  {settings} make run", flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.httpd.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake EvoLink upstream for Seedream Studio.")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--key", default="sk-evo-fake", help="the API key it accepts")
    parser.add_argument("--polls", type=int, default=2, help="status checks until a task completes")
    args = parser.parse_args(argv)
    fake = FakeEvoLink(port=args.port, api_key=args.key)
    fake.polls = args.polls
    serve(fake, {"EVOLINK_API_KEY": fake.api_key, "EVOLINK_BASE_URL": fake.url, "EVOLINK_FILES_URL": fake.url})


if __name__ == "__main__":
    main()
