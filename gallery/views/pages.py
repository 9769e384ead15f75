"""Sections whose full pages come with later work; each says plainly what it will hold."""

from django.shortcuts import render

from gallery.access import team_required


@team_required
def api(request):
    return render(
        request,
        "gallery/not_built.html",
        {
            "title": "API",
            "what": "Team API keys and an EvoLink-compatible endpoint (POST /v1/images/generations, GET /v1/tasks/{id}) with curl examples for this team.",
            "now": "The API is not available on this instance yet.",
        },
    )
