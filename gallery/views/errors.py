from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.shortcuts import render

from gallery import options

BAD_REQUESTS = {
    TooManyFilesSent: f"This request carried more files than any studio form sends (at most "
    f"{options.MAX_REFERENCES} reference images are accepted). Nothing was saved.",
    TooManyFieldsSent: "This request carried more fields than any studio form sends. Nothing was saved. "
    "If you selected many images at once, select fewer.",
    RequestDataTooBig: "This request's form fields were larger than the studio accepts. Nothing was saved.",
}


def bad_request(request, exception=None):
    message = next(
        (text for kind, text in BAD_REQUESTS.items() if isinstance(exception, kind)),
        "The studio could not read this request. Nothing was saved; reload the page and try again.",
    )
    return render(request, "error.html", {"title": "Request refused", "message": message}, status=400)



def csrf_failure(request, reason=""):
    message = (
        "This form could not be accepted: it was open too long, or the browser blocked the studio's "
        "cookie. Nothing was saved. Reload the page and try again."
    )
    return render(request, "error.html", {"title": "Form expired", "message": message}, status=403)


def forbidden(request, exception=None):
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    return render(request, "error.html", {"title": "Not allowed", "message": message}, status=403)


def not_found(request, exception=None):
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": "There is nothing here, or it belongs to another team."},
        status=404,
    )


def server_error(request):
    # We cannot know what was saved before the error, so we do not promise "nothing changed".
    ctx = {
        "title": "Something went wrong",
        "message": "The studio hit an error it did not expect. It has been logged. Reload the page to "
        "see what was saved, then try again.",
        "request_id": getattr(request, "id", ""),
    }
    return render(request, "error.html", ctx, status=500)
