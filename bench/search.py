"""(e) Searching prompts: a search at 100,000 images against the same search at 1,000.

Two databases, one team each: 1,000 images (the floor) and 100,000 (20,000 with --quick).
Rows are bulk-created (one task per image, one real original and thumbnail shared), prompts
"A <subject>, study <i>" with six subjects in turn, and one image (the 500th newest) "A zebra
crossing, study 500". Each search is a whole gallery request through Django's test client as a
signed-in member (middleware, session, the FTS or full-text query, the capped count, the
template of up to 48 tiles), and the same request in both databases:
  lighthouse      a frequent word: 1 prompt in 6 (16,667 images at 100,000)
  lightho         the same as a prefix, as typed so far
  perfume bottle  two words, 1 prompt in 6
  zebra           one image
  unicorn         no image
Medians of rounds run in a shuffled order, in turns that alternate between the two
databases (each turn a fresh process), so that drift on the machine hits both sizes alike. Goal: ≤ 1.3× for each search. On SQLite (temp files)
and PostgreSQL (fresh databases, dropped at the end; skipped with a note if not reachable).
"""

import contextlib
import gc
import json
import random
import statistics
import time

from bench import common

GOAL = 1.3
SEARCHES = {
    "lighthouse": "lighthouse",
    "lightho": "lightho",
    "perfume bottle": "perfume+bottle",
    "zebra": "zebra",
    "unicorn": "unicorn",
}
SUBJECTS = ["lighthouse", "fox", "perfume bottle", "city at night", "astronaut", "island map"]


def main(argv=None):
    args = common.arguments(__doc__.splitlines()[0], argv, extra=lambda p: p.add_argument(
        "--databases", default="SQLite,PostgreSQL", help="which, comma-separated (default %(default)s)"))
    if args.child:
        return search_child(args.child, json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    big = 20_000 if args.quick else 100_000
    turns, rounds = (3, 5) if args.quick else (6, 5)
    common.heading(f"search: {big:,} images vs 1,000")
    results = {}
    with common.temp_dir("seedream-bench-search-") as tmp:
        for name in args.databases.split(","):
            try:
                with contextlib.ExitStack() as databases:
                    envs = {}
                    for size in (1_000, big):
                        url = databases.enter_context(common.named_database(
                            name, tmp, f"seedream_bench_search_{size}", f"search-{size}.sqlite3"))
                        envs[size] = common.process_env(url, tmp / "media", tmp)
                        started = time.monotonic()
                        results[name, size] = common.run_child(
                            "search", "prepare", {"tmp": str(tmp), "size": size}, envs[size], timeout=1800)
                        results[name, size]["timings"] = {label: [] for label in SEARCHES}
                        common.note(f"{name}, {size:,} images: set up in {time.monotonic() - started:.0f} s")
                    # Turns alternate between the two databases, so drift on the machine hits both alike.
                    for _ in range(turns):
                        for size in (1_000, big):
                            timings = common.run_child("search", "measure", {"tmp": str(tmp), "rounds": rounds},
                                                       envs[size])
                            for label, values in timings.items():
                                results[name, size]["timings"][label] += values
                    common.note(f"{name}: {turns} alternating turns of {rounds} rounds per size")
            except common.PostgresUnavailable as e:
                common.note(f"PostgreSQL skipped: not reachable ({e})")
    for (name, size), r in results.items():
        if size == big:
            for label, plan in r["plans"].items():
                common.note(f"{name}, {size:,} images, the page of '{label}':")
                for line in plan.splitlines():
                    common.note(f"    {line}")
    rows = []
    for (name, size), r in results.items():
        for label in SEARCHES:
            values = r["timings"][label]
            rows.append([name, f"{size:,}", label, r["found"][label], f"{statistics.median(values) * 1000:.1f}",
                         f"{min(values) * 1000:.1f}"])
    common.table(["database", "images", "search", "count shown", "median ms", "best ms"], rows)
    print()
    for name in ("SQLite", "PostgreSQL"):
        if (name, big) not in results:
            continue
        for label in SEARCHES:
            common.figure(f"search {name} '{label}', {big:,} vs 1,000 images",
                          statistics.median(results[name, big]["timings"][label]) * 1000,
                          statistics.median(results[name, 1_000]["timings"][label]) * 1000,
                          goal=GOAL, unit="ms")


def search_child(role, spec):
    common.exit_cleanly_on_sigterm()
    common.setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from gallery.models import GalleryImage

    if role == "prepare":
        team, user = common.migrate_and_owner()
        common.bulk_images(team, user, spec["size"], prompt=prompt)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
        plans = {label: GalleryImage.objects.for_team(team).matching(SEARCHES[label].replace("+", " "))
                 .newest_first()[:49].explain() for label in ("lighthouse", "zebra")}
    user = get_user_model().objects.get(username="bench")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user, backend="gallery.auth.EmailOrUsernameBackend")
    found = {}
    for label, q in SEARCHES.items():  # warm up, and read what each search shows
        response = client.get(f"/gallery/?q={q}")
        assert response.status_code == 200, (label, response.status_code)
        body = response.content.decode()
        found[label] = body.split('class="gallery-count"', 1)[1].split("</strong>", 1)[0].rsplit(">", 1)[1] \
            if 'class="gallery-count"' in body else "-"
    if role == "prepare":
        return common.answer(spec, {"found": found, "plans": plans})
    gc.collect()
    gc.freeze()
    timings = {label: [] for label in SEARCHES}
    order = list(SEARCHES)
    for round_number in range(spec["rounds"]):
        random.Random(round_number).shuffle(order)
        for label in order:
            gc.collect()
            started = time.perf_counter()
            client.get(f"/gallery/?q={SEARCHES[label]}")
            timings[label].append(time.perf_counter() - started)
    common.answer(spec, timings)


def prompt(i):
    return "A zebra crossing, study 500" if i == 500 else f"A {SUBJECTS[i % len(SUBJECTS)]}, study {i}"


if __name__ == "__main__":
    import sys

    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
