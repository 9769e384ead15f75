"""The OpenAPI 3.1 document of the Team API, served at /v1/openapi.json. Hand-written from the
same tables the views use (models, ratios, qualities, limits), so it cannot drift on those."""

from gallery import catalog, options

from .errors import TYPES


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _file_error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FileError"}}}}


def _ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*statuses, files=False):
    texts = {400: "The request breaks a rule; the message says which.", 401: "No key, a wrong key, or a revoked key.",
             402: "The team's monthly budget would be passed.", 403: "Not allowed (the file quota is full).",
             404: "No such thing in this team.", 405: "Wrong method.", 409: "The first request with this "
             "Idempotency-Key is still being handled.", 413: "A reference image or the body is too large.",
             415: "The body is not JSON, or an image is not JPG, PNG or WEBP.", 422: "This Idempotency-Key was used "
             "with another body.", 429: "The key's rate limit; see Retry-After.", 503: "The studio's storage is unavailable."}
    make = _file_error if files else _error
    return {str(status): make(texts[status]) for status in statuses}


AUTH = (401, 405, 429)


def document(base):
    ratios = list(options.RATIOS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Seedream Studio Team API",
            "version": "1.0.0",
            "description": "EvoLink-compatible: point an EvoLink client at this studio (base URL and key) and "
            "change nothing else. Images are kept in the team's gallery for good; costs count against the team's "
            "budget. See docs/API.md.",
        },
        "servers": [{"url": base}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/v1/images/generations": {"post": {
                "operationId": "createGeneration",
                "summary": "Create an image generation task",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                                "description": "A retry with the same key and body within 24 h gets the first answer."}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/GenerationRequest"}}}},
                "responses": {"200": _ok("Task", "The task, as created"),
                              **_errors(400, 402, 409, 413, 415, 422, 503, *AUTH)},
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
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "file_name": {"type": "string"},
                                   "upload_path": {"type": "string"}}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(400, 403, 413, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/upload/base64": {"post": {
                "operationId": "uploadFileBase64",
                "summary": "Upload a reference image as base64 or a data: URI",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["base64_data"],
                    "properties": {"base64_data": {"type": "string"}, "file_name": {"type": "string"},
                                   "upload_path": {"type": "string"}}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(400, 403, 413, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/upload/url": {"post": {
                "operationId": "uploadFileUrl",
                "summary": "Upload a reference image from a public https URL",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["file_url"],
                    "properties": {"file_url": {"type": "string"}, "file_name": {"type": "string"},
                                   "upload_path": {"type": "string"}}}}}},
                "responses": {"200": _ok("FileAnswer"), **_errors(400, 403, 413, 415, *AUTH, files=True)},
            }},
            "/api/v1/files/quota": {"get": {
                "operationId": "getFilesQuota", "summary": "The team's file count and quota",
                "responses": {"200": _ok("QuotaAnswer"), **_errors(*AUTH, files=True)},
            }},
            "/api/v1/files/list": {"get": {
                "operationId": "listFiles", "summary": "The team's uploaded files, newest first",
                "parameters": [
                    {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
                    {"name": "page_size", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                ],
                "responses": {"200": _ok("FileList"), **_errors(400, *AUTH, files=True)},
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
                "GenerationRequest": {
                    "type": "object", "required": ["prompt"],
                    "properties": {
                        "model": {"type": "string", "enum": list(catalog.MODELS)},
                        "prompt": {"type": "string", "minLength": 1,
                                   "maxLength": max(m.max_prompt_chars for m in catalog.MODELS.values())},
                        "n": {"type": "integer", "minimum": 1, "maximum": options.MAX_IMAGES},
                        "size": {"type": "string", "description": f"{', '.join(ratios)}, or WIDTHxHEIGHT"},
                        "quality": {"type": "string", "enum": list(options.QUALITIES)},
                        "prompt_priority": {"type": "string", "enum": [p for p, _ in options.PRIORITIES]},
                        "image_urls": {"type": "array", "maxItems": options.MAX_REFERENCES,
                                       "items": {"type": "string"},
                                       "description": "https URLs, data: URIs, or file_url values of the file service"},
                        "callback_url": {"type": "string", "maxLength": 2048},
                        "model_params": {"type": "object", "properties": {
                            "output_format": {"type": "string", "enum": ["png", "jpeg"]},
                            "tools": {"type": "array", "items": {"type": "object", "properties": {
                                "type": {"type": "string", "enum": ["web_search"]}}}},
                            "watermark": {"type": "boolean"},
                            "background": {"type": "string", "enum": ["opaque", "transparent"]},
                        }},
                    },
                },
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


def _envelope(data):
    return {"type": "object", "required": ["success", "code", "msg", "data"], "properties": {
        "success": {"type": "boolean", "const": True}, "code": {"type": "integer"}, "msg": {"type": "string"},
        "data": data}}
