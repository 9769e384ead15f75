"""Every API error in the upstream's shapes: `{"error": {code, message, type, param}}` for the
task API and `{success, code, msg}` for the file service, with the upstream's statuses."""

from django.http import JsonResponse

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    411: "invalid_request_error",
    413: "request_too_large_error",
    415: "unsupported_media_type_error",
    422: "idempotency_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    503: "service_unavailable_error",
}

EVOLINK, FILES = "evolink", "files"


class ApiError(Exception):
    """An answer other than success; `message` is a sentence for the person reading the logs of
    their script, `param` the request field at fault (if one is)."""

    def __init__(self, status, message, param=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}

    def response(self, envelope=EVOLINK):
        return error_response(self.status, self.message, self.param, self.headers, envelope)


def error_response(status, message, param=None, headers=None, envelope=EVOLINK):
    if envelope == FILES:
        body = {"success": False, "code": status, "msg": message}
    else:
        body = {"error": {"code": status, "message": message, "type": TYPES.get(status, "invalid_request_error"),
                          "param": param}}
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def envelope_for(path):
    return FILES if path == "/api/v1/files" or path.startswith("/api/v1/files/") else EVOLINK


def is_api_path(path):
    return path.startswith(("/v1/", "/api/v1/"))
