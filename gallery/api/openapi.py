"""The OpenAPI 3.1 document of the Team API, served at /v1/openapi.json. Hand-written from the
same tables the views use (models, ratios, qualities, limits), so it cannot drift on those.

It says what the API does, no more and no less (issue 21, checked by Schemathesis with every check
in tests/gallery/test_api_openapi.py): each model's rules are a branch of its own (oneOf on
`model`), and what JSON Schema cannot check (an image's content, a URL's host, a custom size's
pixel count) is a named `format`, explained in FORMATS."""

from django.conf import settings

from gallery import catalog, options

from .errors import TYPES

MAX_FILE_NAME = 255
LIST_PAGE_LAST, LIST_PAGE_MAX = 1_000_000, 100

# Python's whitespace (str.strip), and the control characters a prompt may not hold (all but tab and
# newline; a carriage return becomes a newline). Spelled as escapes both ECMA-262 and Python read alike.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_EDGE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_INNER = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
# Not blank once trimmed, and no control character inside (gallery/forms/studio.py clean_prompt).
PROMPT_PATTERN = rf"^[{_SPACE}]*{_EDGE}(?:{_INNER}*{_EDGE})?[{_SPACE}]*$"
# WIDTHxHEIGHT as gallery/forms/studio.py CUSTOM_SIZE reads it (x, X, × or *; spaces around).
CUSTOM_SIZE_PATTERN = rf"^[{_SPACE}]*[0-9]{{1,5}}[{_SPACE}]*[xX\u00d7*][{_SPACE}]*[0-9]{{1,5}}[{_SPACE}]*$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$"
# What each format's values start with, and the characters of base64 (spaces in it are ignored).
BASE64_PATTERN = rf"^(?:data:[^,]*;base64,)?[A-Za-z0-9+/={_SPACE}]+$"  # so never empty
REFERENCE_PATTERN = r"^(?:data:|[hH][tT][tT][pP][sS]?://)"  # a file_url of the studio's own may be http


def url_pattern():
    """https:// (any case), or http:// too where the instance allows it (ALLOW_HTTP_URLS, development)."""
    return r"^[hH][tT][tT][pP][sS]?://" if settings.ALLOW_HTTP_URLS else r"^[hH][tT][tT][pP][sS]://"


_IMAGE_RULES = (f"a JPEG, PNG or WEBP image (by content; GIF and the rest are refused with 415), each side "
                f"{options.MIN_REFERENCE_SIDE:,}–{options.MAX_REFERENCE_SIDE:,} px, the long side at most "
                f"{options.MAX_REFERENCE_ASPECT:g} × the short, at most {options.MAX_REFERENCE_BYTES // 2**20} MB")
# A value of each format, for the document's readers and for tools that take examples as valid values.
# The image is the smallest the upload rules take: a 14 × 14 PNG.
IMAGE_EXAMPLE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAA4AAAAOCAIAAACQKrqGAAAAGUlEQVR4nGM8ESXCQBxgIlLdqNJR"
                 "pQwMDAD6qAFSy4ZmRwAAAABJRU5ErkJggg==")
PHOTO_URL = "https://images.example.com/photo.png"
URL_EXAMPLES = {"image-url": PHOTO_URL, "image-reference": PHOTO_URL, "public-https-url": "https://hooks.example.com/seedream"}


def _size_example(model):
    side = -(-int(model.min_pixels ** 0.5) // 64) * 64  # the smallest square of whole 64s the model takes
    return f"{side}x{side}"


# The formats JSON Schema cannot check, and what each means (a value outside one is refused with 400,
# 413 or 415).
FORMATS = {
    "image-base64": f"base64 (bare, or a data:image/…;base64, URI) of {_IMAGE_RULES}.",
    "image-reference": f"a data:image/…;base64, URI of {_IMAGE_RULES}; a file_url of this studio's file service "
                       "(the team's own files); or an https:// URL whose host is a public internet name or address, "
                       "fetched later by the studio under the same rules (a task whose URL cannot be fetched fails).",
    "image-url": f"an https:// URL whose host is a public internet name or address, serving {_IMAGE_RULES}; "
                 "fetched at once, without following redirects, within 15 s.",
    "public-https-url": "an https:// URL whose host is a public internet name or address (not loopback, private, "
                        "link-local or metadata addresses, one-word names, .local/.internal/.lan-style names or the "
                        "studio's own names), without a user name or password.",
    **{f"size-{model.id}": f"WIDTHxHEIGHT for {model.name}: {model.min_pixels:,}–{model.max_pixels:,} pixels in all, "
                           f"the aspect between 1:{1 / options.MIN_CUSTOM_ASPECT:g} and "
                           f"{options.MAX_CUSTOM_ASPECT:g}:1." for model in catalog.MODELS.values()},
}


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _file_error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FileError"}}}}


def _ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


FILE_NAME = {"type": "string", "maxLength": MAX_FILE_NAME,
             "description": "The name to keep (default: the upload's own); characters that cannot be shown are dropped."}
UPLOAD_PATH = {"description": "EvoLink's folder: accepted, not used."}


def _errors(*statuses, files=False):
    texts = {400: "The request breaks a rule; the message says which.", 401: "No key, a wrong key, or a revoked key.",
             402: "The team's monthly budget would be passed.", 403: "Not allowed (the file quota is full).",
             404: "No such thing in this team.", 405: "Wrong method.", 409: "The first request with this "
             "Idempotency-Key is still being handled.", 413: "A reference image or the body is too large.",
             411: "A body sent in chunks to a server that cannot read one: send Content-Length.",
             415: "The body is not JSON, or an image is not JPG, PNG or WEBP.", 422: "This Idempotency-Key was used "
             "with another body.", 429: "The key's rate limit, or too many wrong keys from this address; see "
             "Retry-After.", 503: "The studio's storage is unavailable."}
    make = _file_error if files else _error
    return {str(status): make(texts[status]) for status in statuses}


# What any call may be answered with: a malformed header (Content-Length, Host), a body over the
# endpoint's cap (gallery/api/body.py), the key, the method, the rate limit.
AUTH = (400, 401, 405, 413, 429)


def document(base):
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Seedream Studio Team API",
            "version": "1.0.0",
            "description": "EvoLink-compatible: point an EvoLink client at this studio (base URL and key) and "
            "change nothing else. Images are kept in the team's gallery for good; costs count against the team's "
            "budget. See docs/API.md.\n\nFormats this document names that JSON Schema cannot check:\n"
            + "\n".join(f"- `{name}`: {meaning}" for name, meaning in FORMATS.items()),
        },
        "servers": [{"url": base}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/v1/images/generations": {"post": {
                "operationId": "createGeneration",
                "summary": "Create an image generation task",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                                "description": "A retry with the same key and body within 24 h gets the first answer."}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/GenerationRequest"}}}},
                "responses": {"200": _ok("Task", "The task, as created"),
                              **_errors(402, 409, 411, 415, 422, 503, *AUTH)},
            }},
            "/v1/tasks/{task_id}": {"get": {
                "operationId": "getTask",
                "summary": "A task's status; when completed, `results` holds signed links valid for days",
                "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("Task"), **_errors(404, *AUTH)},
            }},
            "/v1/credits": {"get": {
                "operationId": "getCredits",
                "summary": "What the team has left of its monthly budget (dollars), or its spend",
                "responses": {"200": _ok("Credits"), **_errors(*AUTH)},
            }},
            "/api/v1/files/upload/stream": {"post": {
                "operationId": "uploadFileStream",
                "summary": "Upload a reference image (multipart field `file`)",
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary", "description": _IMAGE_RULES[0].upper()
                                 + _IMAGE_RULES[1:] + ". A 1×1 image is refused: it is smaller than "
                                 f"{options.MIN_REFERENCE_SIDE} px."},
                        "file_name": FILE_NAME, "upload_path": UPLOAD_PATH}},
                    "encoding": {"file": {"contentType": "image/png, image/jpeg, image/webp"}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(403, 411, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/upload/base64": {"post": {
                "operationId": "uploadFileBase64",
                "summary": "Upload a reference image as base64 or a data: URI",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["base64_data"],
                    "properties": {"base64_data": {"type": "string", "pattern": BASE64_PATTERN,
                                                   "format": "image-base64", "examples": [IMAGE_EXAMPLE],
                                                   "description": FORMATS["image-base64"]},
                                   "file_name": {**FILE_NAME, "type": ["string", "null"]}, "upload_path": UPLOAD_PATH}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(403, 411, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/upload/url": {"post": {
                "operationId": "uploadFileUrl",
                "summary": "Upload a reference image from a public https URL",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["file_url"],
                    "properties": {"file_url": {"type": "string", "pattern": url_pattern(), "format": "image-url",
                                                "examples": [URL_EXAMPLES["image-url"]],
                                                "description": FORMATS["image-url"]},
                                   "file_name": {**FILE_NAME, "type": ["string", "null"]}, "upload_path": UPLOAD_PATH}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(403, 411, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/quota": {"get": {
                "operationId": "getFilesQuota", "summary": "The team's file count and quota",
                "responses": {"200": _ok("QuotaAnswer"), **_errors(*AUTH, files=True)},
            }},
            "/api/v1/files/list": {"get": {
                "operationId": "listFiles", "summary": "The team's uploaded files, newest first",
                "parameters": [
                    {"name": "page", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": LIST_PAGE_LAST, "default": 1}},
                    {"name": "page_size", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": LIST_PAGE_MAX, "default": 20},
                     "description": "Files per page. Wins over pageSize when both are sent."},
                    {"name": "pageSize", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": LIST_PAGE_MAX, "default": 20},
                     "description": "EvoLink's client's spelling of page_size (checked the same way)."},
                ],
                "responses": {"200": _ok("FileList"), **_errors(*AUTH, files=True)},
            }},
            "/api/v1/files/{file_id}": {"delete": {
                "operationId": "deleteFile", "summary": "Delete an uploaded file",
                "parameters": [{"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("DeleteAnswer"), **_errors(404, *AUTH, files=True)},
            }},
        },
        "webhooks": {"taskFinished": {"post": {
            "summary": "POSTed to callback_url when a task completes, fails or is cancelled; signed the Standard "
            "Webhooks way (webhook-id, webhook-timestamp, webhook-signature)",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}},
            "responses": {"200": {"description": "Any 2xx ends the retries; 410 stops them too."}},
        }}},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A team key from the studio's API page (sk-studio-…)."}},
            "schemas": {
                **_generation_requests(),
                "Task": {
                    "type": "object",
                    "required": ["created", "id", "model", "object", "progress", "status", "task_info", "type", "usage"],
                    "properties": {
                        "created": {"type": "integer"},
                        "id": {"type": "string"},
                        "model": {"type": "string"},
                        "object": {"type": "string", "const": "image.generation.task"},
                        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                        "status": {"type": "string", "enum": ["pending", "processing", "completed", "failed"]},
                        "task_info": {"type": "object", "required": ["can_cancel", "estimated_time"], "properties": {
                            "can_cancel": {"type": "boolean"}, "estimated_time": {"type": "integer"}}},
                        "type": {"type": "string", "const": "image"},
                        "usage": {"type": "object", "required": ["billing_rule", "credits_reserved", "user_group"],
                                  "properties": {"billing_rule": {"type": "string"},
                                                 "credits_reserved": {"type": "number"},
                                                 "credits_used": {"type": "number"},
                                                 "user_group": {"type": "string"}}},
                        "results": {"type": "array", "items": {"type": "string", "format": "uri"}},
                        "error": {"type": "object", "required": ["code", "message"], "properties": {
                            "code": {"type": "string"}, "message": {"type": "string"}}},
                    },
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message", "type"], "properties": {
                        "code": {"type": "integer"}, "message": {"type": "string"},
                        "type": {"type": "string", "enum": sorted(set(TYPES.values()))},
                        "param": {"type": ["string", "null"]}}}},
                },
                "FileError": {"type": "object", "required": ["success", "code", "msg"], "properties": {
                    "success": {"type": "boolean", "const": False}, "code": {"type": "integer"}, "msg": {"type": "string"}}},
                "File": {"type": "object", "required": ["file_id", "file_url", "mime_type", "file_size"], "properties": {
                    "file_id": {"type": "string"}, "file_name": {"type": "string"}, "original_name": {"type": "string"},
                    "file_size": {"type": "integer"}, "mime_type": {"type": "string"}, "upload_path": {"type": "string"},
                    "file_url": {"type": "string", "format": "uri"}, "download_url": {"type": "string", "format": "uri"},
                    "upload_time": {"type": "string"}, "expires_at": {"type": ["string", "null"]},
                    "width": {"type": "integer"}, "height": {"type": "integer"}}},
                "FileAnswer": _envelope({"$ref": "#/components/schemas/File"}),
                "QuotaAnswer": _envelope({"type": "object", "required": ["used_files", "max_files", "remain_files"],
                                          "properties": {"user_group": {"type": "string"},
                                                         "used_files": {"type": "integer"},
                                                         "max_files": {"type": "integer"},
                                                         "remain_files": {"type": "integer"},
                                                         "is_custom": {"type": "boolean"},
                                                         "quota_reason": {"type": "string"}}}),
                "FileList": _envelope({"type": "object", "required": ["files", "total", "page", "page_size"],
                                       "properties": {"files": {"type": "array",
                                                                "items": {"$ref": "#/components/schemas/File"}},
                                                      "total": {"type": "integer"}, "page": {"type": "integer"},
                                                      "page_size": {"type": "integer"}}}),
                "DeleteAnswer": _envelope({"type": "object", "properties": {"file_id": {"type": "string"}}}),
                "Credits": {"type": "object", "required": ["success", "data"], "properties": {
                    "success": {"type": "boolean"}, "message": {"type": "string"},
                    "data": {"type": "object", "required": ["user", "token"], "properties": {
                        "user": {"$ref": "#/components/schemas/Balance"},
                        "token": {"$ref": "#/components/schemas/Balance"}}}}},
                "Balance": {"type": "object", "required": ["remaining_credits", "used_credits", "unlimited_credits"],
                            "properties": {"remaining_credits": {"type": "number"}, "used_credits": {"type": "number"},
                                           "unlimited_credits": {"type": "boolean"}}},
            },
        },
    }


WEB_SEARCH = {"type": "object", "required": ["type"], "additionalProperties": False,
              "properties": {"type": {"const": "web_search"}}}


def _generation_requests():
    """GenerationRequest: one branch per model (its rules), plus one for a body without `model`
    (the studio's default model's rules)."""
    default = catalog.get(settings.DEFAULT_MODEL) or catalog.get(options.DEFAULT_MODEL)
    branches = {f"GenerationRequest.{model.id}": _generation_request(model, {"const": model.id})
                for model in catalog.MODELS.values()}
    branches["GenerationRequest.default"] = _generation_request(default, {"type": "null"})
    return {
        "GenerationRequest": {
            "description": "EvoLink's body. Each model takes its own settings: the branch whose `model` matches "
            f"applies; without `model` (or with null) the studio's default, {default.id}. An unknown model, or an "
            "empty string, is refused. Fields left out or null take their defaults. Unknown fields are ignored.",
            "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in branches],
        },
        **branches,
    }


def _generation_request(model, model_schema):
    custom = {"type": "string", "pattern": CUSTOM_SIZE_PATTERN, "format": f"size-{model.id}",
              "examples": [_size_example(model)]}
    rules = [
        # A custom WIDTHxHEIGHT takes any quality tier; a ratio only the model's own.
        {"if": {"required": ["size"], "properties": {"size": custom}},
         "then": {"properties": {"quality": {"enum": [*options.QUALITIES, None]}}},
         "else": {"properties": {"quality": {"enum": [*model.qualities, None]}}}},
    ]
    # References + n ≤ MAX_IMAGES: with k references, n is at most MAX_IMAGES − k.
    for k in range(1, options.MAX_REFERENCES + 1):
        if options.MAX_IMAGES - k < model.max_images:
            rules.append({"if": {"required": ["image_urls"], "properties": {"image_urls": {"type": "array", "minItems": k}}},
                          "then": {"properties": {"n": {"maximum": options.MAX_IMAGES - k}}}})
    if "transparent" in model.backgrounds:
        rules.append({
            "if": {"required": ["model_params"], "properties": {"model_params": {
                "type": "object", "required": ["background"], "properties": {"background": {"const": "transparent"}}}}},
            "then": {"required": ["image_urls"], "properties": {"image_urls": {"type": "array", "minItems": 1,
                                                                               "maxItems": 1}}},
        })
    offered = [name for name, takes in (("output_format", model.output_formats), ("tools", model.web_search),
                                        ("watermark", model.watermark), ("background", model.backgrounds)) if takes]
    # What a model does not take must be left out (false), or be its "off" value (watermark false, no tools).
    params = {
        "output_format": {"type": "string", "enum": list(model.output_formats)} if model.output_formats else False,
        "tools": {"type": "array", "items": WEB_SEARCH} if model.web_search else {"type": "array", "maxItems": 0},
        "watermark": {"type": "boolean"} if model.watermark else {"const": False},
        "background": {"type": "string", "enum": list(model.backgrounds)} if model.backgrounds else False,
    }
    return {
        "type": "object",
        "description": f"{model.name}: " + "; ".join([
            f"quality {', '.join(model.qualities)} (default {model.default_quality})",
            f"n at most {model.max_images}" + (", references + n at most 15" if model.max_images > 1 else ""),
            f"prompt_priority {' or '.join(model.priorities)}",
            f"model_params: {', '.join(offered) or 'none'}"
            + (" (transparent: exactly one reference, a PNG with transparency)" if "transparent" in model.backgrounds else ""),
        ]) + ".",
        "required": ["prompt", "model"] if "const" in model_schema else ["prompt"],
        "properties": {
            "model": model_schema,
            "prompt": {"type": "string", "minLength": 1, "maxLength": model.max_prompt_chars, "pattern": PROMPT_PATTERN,
                       "description": f"At most {model.max_prompt_chars:,} characters as sent; not blank; no control "
                       "characters but tab and newline."},
            "n": {"type": "integer", "minimum": 1, "maximum": model.max_images},
            "size": {"anyOf": [{"type": "string", "enum": list(options.RATIOS)}, custom, {"type": "null"}],
                     "description": f"{', '.join(options.RATIOS)}, or WIDTHxHEIGHT ({FORMATS['size-' + model.id]})"},
            "quality": {"type": ["string", "null"], "enum": [*options.QUALITIES, None]},
            "prompt_priority": {"type": ["string", "null"], "enum": [*model.priorities, None]},
            "image_urls": {"type": ["array", "null"], "maxItems": options.MAX_REFERENCES,
                           "items": {"type": "string", "pattern": REFERENCE_PATTERN, "format": "image-reference",
                                     "examples": [URL_EXAMPLES["image-reference"], IMAGE_EXAMPLE]},
                           "description": FORMATS["image-reference"]},
            "callback_url": {"anyOf": [{"type": "null"}, {"const": ""},
                                       {"type": "string", "maxLength": 2048, "pattern": url_pattern(),
                                        "format": "public-https-url", "examples": [URL_EXAMPLES["public-https-url"]]}],
                             "description": "Where the finished task is POSTed (signed); empty or null: nowhere. "
                             + FORMATS["public-https-url"]},
            "model_params": {"type": ["object", "null"], "additionalProperties": False, "properties": params},
        },
        "allOf": rules,
    }


def _envelope(data):
    return {"type": "object", "required": ["success", "code", "msg", "data"], "properties": {
        "success": {"type": "boolean", "const": True}, "code": {"type": "integer"}, "msg": {"type": "string"},
        "data": data}}
