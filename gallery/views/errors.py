from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.shortcuts import render

from gallery import options
from gallery.api.errors import envelope_for, error_response, is_api_path

BAD_REQUESTS = {
    TooManyFilesSent: f"This request carried more files than any studio form sends (at most "
    f"{options.MAX_REFERENCES} reference images are accepted). Nothing was saved.",
    TooManyFieldsSent: "This request carried more fields than any studio form sends. Nothing was saved. "
    "If you selected many images at once, select fewer.",
    RequestDataTooBig: "This request's form fields were larger than the studio accepts. Nothing was saved.",
}


def _api_error(request, status, message):
    """Under /v1/ and /api/v1/ a client reads JSON: every answer is in the Team API's shape."""
    return error_response(status, message, envelope=envelope_for(request.path))


def bad_request(request, exception=None):
    if is_api_path(request.path):
        if isinstance(exception, DisallowedHost):
            return _api_error(request, 400, "The Host header names an address this studio does not answer to: send "
                                            "the request to the studio's own address (its base URL).")
        return _api_error(request, 400, "The studio could not read this request. Nothing was saved.")
    message = next(
        (text for kind, text in BAD_REQUESTS.items() if isinstance(exception, kind)),
        "The studio could not read this request. Nothing was saved; reload the page and try again.",
    )
    return render(request, "error.html", {"title": "Request refused", "message": message}, status=400)



def csrf_failure(request, reason=""):
    if is_api_path(request.path):
        return _api_error(request, 403, "This request was refused by the studio's form protection (CSRF); the Team "
                                        "API takes a bearer key, not a session.")
    message = (
        "This form could not be accepted: it was open too long, or the browser blocked the studio's "
        "cookie. Nothing was saved. Reload the page and try again."
    )
    return render(request, "error.html", {"title": "Form expired", "message": message}, status=403)


def forbidden(request, exception=None):
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    if is_api_path(request.path):
        return _api_error(request, 403, message)
    return render(request, "error.html", {"title": "Not allowed", "message": message}, status=403)


def not_found(request, exception=None):
    if is_api_path(request.path):
        return _api_error(request, 404, f"There is no {request.path} in the Team API: see /v1/openapi.json for "
                                        "the addresses it has.")
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": "There is nothing here, or it belongs to another team."},
        status=404,
    )


def server_error(request):
    if is_api_path(request.path):
        return _api_error(request, 500, "The studio hit an error it did not expect; it has been logged (request "
                                        f"{getattr(request, 'id', '')}).")
    # We cannot know what was saved before the error, so we do not promise "nothing changed".
    ctx = {
        "title": "Something went wrong",
        "message": "The studio hit an error it did not expect. It has been logged. Reload the page to "
        "see what was saved, then try again.",
        "request_id": getattr(request, "id", ""),
    }
    return render(request, "error.html", ctx, status=500)
