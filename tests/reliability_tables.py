"""Prints the tables of docs/RELIABILITY.md from the tests that check them, so the document and
the tests never disagree:

    SECRET_KEY=x .venv/bin/python -m tests.reliability_tables
"""

import os

import django


def route_matrix():
    from tests.gallery import test_routes_roles as t

    def cell(value):
        if value == t.LOGIN:
            return "302 → sign in"
        if isinstance(value, tuple):
            return f"302 → {value[1]}" if isinstance(value[1], str) else "302"
        return str(value)

    cases = list(t.CASES.values())
    lines = ["| route (variant) | method | owner | admin | member | outsider | anonymous |", "|---|---|---|---|---|---|---|"]
    for case in cases:
        if not case.route.startswith("admin/"):
            cells = " | ".join(cell(case.expect[role]) for role in t.ROLES)
            lines.append(f"| `{case.key}` | {case.method} | {cells} |")
    admin = sum(case.route.startswith("admin/") for case in cases)
    lines.append(f"\nPlus {admin} Django admin routes: every caller above (none of them staff) is sent to the admin's sign-in.")
    return "\n".join(lines)


def bad_input_table():
    from tests.gallery import test_bad_input as t

    lines = ["| row | request | status | what the person reads |", "|---|---|---|---|"]
    for case in t.CASES:
        where = case.url if isinstance(case.url, str) else "(a team object's URL)"
        message = case.message.replace("|", "\\|")[:110]
        lines.append(f"| `{case.name}` | {case.method} {where}{' (htmx)' if case.htmx else ''} | {case.status} | {message} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedream_site.settings")
    django.setup()
    print("## Routes × roles\n")
    print(route_matrix())
    print("\n## Bad input\n")
    print(bad_input_table())
