"""A fake BytePlus ModelArk (Seedream 4) on a real loopback socket: one synchronous call that
answers with image links served from itself.

In tests:   with FakeBytePlus() as fake: fake.use_in(settings); …
On its own: python -m tests.fakes.byteplus --port 9101

Faults as in tests/fakes/evolink.py, on the routes "create" and "result"; an HTTP status takes
code=… (e.g. fake.fault("create", 403, code="AccountOverdueError")). Prompt markers:
  [byteplus:sensitive] the prompt is refused (400 InputTextSensitiveContentDetected)
  [byteplus:blocked] every image is withheld (200 with per-image OutputImageSensitiveContentDetected)
  [byteplus:fewer=K] produces only K images; [byteplus:http=STATUS] answers that status
"""

import argparse
import base64
import binascii
import io
import re
import time

from PIL import Image

from .evolink import FakeUpstream, markers, output_size, serve

MODEL = "seedream-4-0-250828"
# ModelArk's ids of the Seedream family and what each takes (its API reference, 2026), written apart
# from the studio's table (gallery/catalog.py).
MODELS = {
    MODEL: {"sizes": {"1K", "2K", "4K"}, "modes": {"standard", "fast"}, "extras": set()},
    "seedream-4-5-251128": {"sizes": {"2K", "4K"}, "modes": {"standard"}, "extras": set()},
    "seedream-5-0-260128": {"sizes": {"2K", "3K"}, "modes": {"standard"}, "extras": {"output_format", "tools"}},
    "seedream-5-0-pro-260628": {"sizes": {"1K", "1.5K", "2K"}, "modes": {"standard", "fast"}, "one_image": True,
                                "extras": {"output_format", "background"}},
}
EXTRAS = {"output_format", "tools", "background"}
DATA_URI = re.compile(r"data:(image/(?:png|jpeg));base64,(.+)", re.S)


class FakeBytePlus(FakeUpstream):
    ERRORS = {
        400: ("BadRequest", "InvalidParameter", "One or more parameters specified in the request are not valid."),
        401: ("Unauthorized", "AuthenticationError", "The API key in the request is missing or invalid."),
        403: ("Forbidden", "AccountOverdueError", "The request failed because your account has an overdue balance."),
        404: ("NotFound", "InvalidEndpointOrModel.NotFound", "The model does not exist or you do not have access to it."),
        429: ("TooManyRequests", "RateLimitExceeded.EndpointRPMExceeded", "Too many requests."),
        500: ("InternalServerError", "InternalServiceError", "The service encountered an unexpected internal error."),
        502: ("BadGateway", "BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "ServiceUnavailable", "The service is temporarily unavailable."),
    }

    def __init__(self, port=0, api_key="bp-fake-key"):
        super().__init__(port, api_key)
        self.references = []  # decoded images the studio sent: content_type, data

    def use_in(self, settings):
        settings.BYTEPLUS_API_KEY = self.api_key
        settings.BYTEPLUS_BASE_URL = self.url

    @property
    def created(self):
        return [r.json for r in self.received if r.method == "POST" and r.path == "/api/v3/images/generations"]

    def api_routes(self):
        return [("POST", r"/api/v3/images/generations", "create", True, self.create), *super().api_routes()]

    def error_body(self, status, route, code=None, message=None, **_):
        kind, default_code, default_message = self.ERRORS.get(status, ("Error", f"Http{status}", f"HTTP {status}"))
        message = f"{message or default_message} Request ID: fake-{int(time.time())}"
        return {"error": {"code": code or default_code, "message": message, "param": "", "type": kind}}

    def create(self, handler, request):
        body = request.json
        problem = self.invalid(body) if isinstance(body, dict) else "The body must be a JSON object."
        if problem:
            self.send_json(handler, 400, self.error_body(400, "create", message=problem))
            return
        found = markers(body["prompt"], "byteplus")
        if found.get("http", "").isdigit():
            status = int(found["http"])
            self.send_json(handler, status, self.error_body(status, "create"))
            return
        if "sensitive" in found:
            self.send_json(handler, 400, self.error_body(400, "create", code="InputTextSensitiveContentDetected"))
            return
        n = 1
        if body.get("sequential_image_generation") == "auto":
            n = (body.get("sequential_image_generation_options") or {}).get("max_images", 15)
        count = min(n, int(found["fewer"])) if found.get("fewer", "").isdigit() else n
        size = body["size"]
        width, height = output_size(size, None) if "x" in size else output_size("auto", size)
        image_format = body.get("output_format", "png")
        if "blocked" in found:
            blocked = {"code": "OutputImageSensitiveContentDetected", "message": "The output image may contain sensitive information."}
            data = [{"error": blocked} for _ in range(count)]
        else:
            data = [
                {"url": self.add_result(width, height, f"fake byteplus {body['model']} #{k}", image_format,
                                        body.get("background") == "transparent"),
                 "size": f"{width}x{height}"}
                for k in range(count)
            ]
        usage = {"generated_images": len([d for d in data if "url" in d]), "output_tokens": 16384 * count, "total_tokens": 16384 * count}
        self.send_json(handler, 200, {"model": body["model"], "created": int(time.time()), "data": data, "usage": usage})

    def invalid(self, body):
        """The first documented rule the body breaks, or None; decodes the reference images."""
        model = MODELS.get(body.get("model"))
        if model is None:
            return "The model does not exist."
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return "prompt is required."
        size = str(body.get("size"))
        if not (re.fullmatch(r"\d+x\d+", size) or size in model["sizes"]):
            return f"size must be WIDTHxHEIGHT or one of {sorted(model['sizes'])} for {body['model']}."
        if (body.get("optimize_prompt_options") or {}).get("mode", "standard") not in model["modes"]:
            return f"optimize_prompt_options.mode must be one of {sorted(model['modes'])} for {body['model']}."
        if extra := sorted((EXTRAS & set(body)) - model["extras"]):
            return f"{body['model']} does not take {', '.join(extra)}."
        if model.get("one_image") and body.get("sequential_image_generation", "disabled") != "disabled":
            return f"{body['model']} generates one image per request."
        if body.get("response_format", "url") != "url":
            return "This fake only answers with URLs."
        images = body.get("image", [])
        images = [images] if isinstance(images, str) else images
        if not isinstance(images, list) or len(images) > 14:
            return "image takes at most 14 images."
        decoded = []
        for image in images:
            match = DATA_URI.fullmatch(image) if isinstance(image, str) else None
            try:
                data = base64.b64decode(match.group(2), validate=True) if match else b""
                with Image.open(io.BytesIO(data)) as im:
                    im.verify()
            except (binascii.Error, OSError, SyntaxError):
                return "image must be PNG or JPEG data URIs or URLs."
            decoded.append({"content_type": match.group(1), "data": data})
        with self.lock:
            self.references.extend(decoded)
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake BytePlus ModelArk upstream for Seedream Studio.")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--key", default="bp-fake-key", help="the API key it accepts")
    args = parser.parse_args(argv)
    fake = FakeBytePlus(port=args.port, api_key=args.key)
    serve(fake, {"BYTEPLUS_API_KEY": fake.api_key, "BYTEPLUS_BASE_URL": fake.url})


if __name__ == "__main__":
    main()
