"""Sections whose full pages come with later work; each says plainly what it will hold."""

from django.shortcuts import render

from gallery.access import team_required


@team_required
def usage(request):
    return render(
        request,
        "gallery/not_built.html",
        {
            "title": "Usage",
            "what": "Spend by day and by member for a chosen month, with a chart, a table and CSV export, and the team's monthly budget.",
            "now": "Each task's cost is shown in the studio's history today.",
        },
    )

