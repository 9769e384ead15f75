from django.shortcuts import render


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
    return render(
        request,
        "error.html",
        {"title": "Something went wrong", "message": "We could not finish this request. Nothing was changed; please try again."},
        status=500,
    )
