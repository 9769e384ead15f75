"""(d) The gallery at depth, and a streamed ZIP of 50 × 4 MB images.

(a) Pages. One database holds a team with 100,000 images (20,000 with --quick) and a team with
100. Rows are bulk-created (one task per image), all sharing one small real original and WebP
thumbnail. Each request goes through Django's test client signed in as a member (middleware,
session, queries, template): the whole view, without a network in between.
  big first page     GET /gallery/ of the 100,000-image team (full page, with its count)
  big deep page      the htmx fragment after a cursor 99,952 images deep (the last page)
Floors, in the same run and database: the 100-image team's first page (full page) and its
second page (fragment after a cursor 48 deep). Medians of rounds run in a shuffled order.
Goal ≤ 1.3×. On SQLite (a temp file) and PostgreSQL (a fresh database `seedream_bench_gallery`,
dropped at the end; skipped with a note if it is not reachable). Search and an exact count are
shown for information (no goal: they are not keyset queries).

(b) ZIP. 50 images of ~4 MB (JPEG and PNG) in storage; the real server of `make run` (granian,
one worker process) answers POST /gallery/download/ for all 50, written to a file on disk by
curl (httpx if there is no curl). Floor: copying the same 50 files on disk (shutil.copyfile).
Also: the peak RSS growth of the server's worker process during the ZIPs (VmHWM reset after a
warm-up ZIP, read after). Goal: ≤ 30 MB RSS growth; throughput has no goal.
"""

import contextlib
import gc
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import common

PAGE_GOAL = 1.3
RSS_GOAL_MB = 30
ZIP_IMAGES = 50
CSRF = "benchcsrftokenbenchcsrftoken1234"  # an unmasked 32-character token, as the cookie holds
CURL = shutil.which("curl")


def main(argv=None):
    args = common.arguments(__doc__.splitlines()[0], argv)
    if args.child:
        return {"pages": pages_child, "zip-setup": zip_setup_child}[args.child](json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    big = 20_000 if args.quick else 100_000
    runs = 15 if args.quick else 40
    with common.temp_dir("seedream-bench-gallery-") as tmp:
        pages(tmp, big, runs)
        zips(tmp, 10 if args.quick else ZIP_IMAGES)


# (a) Pages ------------------------------------------------------------------------------------


def pages(tmp, big, runs):
    common.heading(f"gallery pages: {big:,} images vs 100, first page and the last page")
    results = {}
    for name in ("SQLite", "PostgreSQL"):
        try:
            with common.named_database(name, tmp, "seedream_bench_gallery", "gallery.sqlite3") as url:
                env = common.process_env(url, tmp / "media", tmp)
                started = time.monotonic()
                results[name] = common.run_child(
                    "gallery", "pages", {"tmp": str(tmp), "big": big, "runs": runs}, env, timeout=1800
                )
                common.note(
                    f"{name}: set-up and {runs} rounds in {time.monotonic() - started:.0f} s "
                    f"(bulk insert {results[name]['insert_seconds']:.1f} s)"
                )
        except common.PostgresUnavailable as e:
            common.note(f"PostgreSQL skipped: not reachable ({e})")
    rows = []
    for name, r in results.items():
        for case in CASES:
            rows.append([name, LABELS[case](big), f"{r[case] * 1000:.1f}", f"{r[case + '_best'] * 1000:.1f}"])
    common.table(["database", "request", "median ms", "best ms"], rows)
    print()
    for name, r in results.items():
        for label, case, floor in (
            (f"first page, {big:,} vs 100 images", "big_first", "small_first"),
            (f"page {big - 48:,} deep vs 48 deep", "big_deep", "small_next"),
        ):
            common.figure(
                f"gallery {name} {label}", r[case] * 1000, r[floor] * 1000, goal=PAGE_GOAL, unit="ms"
            )
            common.note(f"best of each: {r[case + '_best'] / r[floor + '_best']:.2f}×")
    common.note(
        f"load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())} at the end "
        f"(on {os.cpu_count()} CPUs: other processes share them)"
    )


CASES = ("small_first", "big_first", "small_next", "big_deep", "big_count", "big_search", "big_search_rare")
LABELS = {
    "small_first": lambda big: "100 images: first page (full)",
    "big_first": lambda big: f"{big:,} images: first page (full, with count)",
    "small_next": lambda big: "100 images: page after 48 (fragment)",
    "big_deep": lambda big: f"{big:,} images: page after {big - 48:,} (fragment)",
    "big_count": lambda big: f"{big:,} images: an exact count alone (info)",
    "big_search": lambda big: f"{big:,} images: search 'lighthouse' (1 in 6), first page (info)",
    "big_search_rare": lambda big: f"{big:,} images: search 'zebra' (no match) (info)",
}


def pages_child(spec):
    common.exit_cleanly_on_sigterm()
    common.setup_django()
    from django.db import connection
    from django.test import Client

    from gallery.views.gallery import PAGE_SIZE

    big_team, big_user = common.migrate_and_owner()
    small_team, small_user = second_team()
    started = time.monotonic()
    big_images = common.bulk_images(big_team, big_user, spec["big"])
    small_images = common.bulk_images(small_team, small_user, 100)
    insert_seconds = time.monotonic() - started
    with connection.cursor() as cursor:
        # Fresh statistics (and on PostgreSQL a visibility map), as autovacuum keeps them in use.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")

    big, small = Client(SERVER_NAME="127.0.0.1"), Client(SERVER_NAME="127.0.0.1")  # an allowed host
    big.force_login(big_user, backend="gallery.auth.EmailOrUsernameBackend")
    small.force_login(small_user, backend="gallery.auth.EmailOrUsernameBackend")
    htmx = {"HX-Request": "true"}
    # The cursor of the image just before the last page: the deepest page there is.
    deep = big_images[len(big_images) - PAGE_SIZE - 1].cursor
    second = small_images[PAGE_SIZE - 1].cursor
    del big_images, small_images  # 100,000 objects would make every gc.collect() below slow
    gc.collect()
    gc.freeze()
    cases = {
        "small_first": lambda: small.get("/gallery/"),
        "big_first": lambda: big.get("/gallery/"),
        "small_next": lambda: small.get(f"/gallery/?cursor={second}", headers=htmx),
        "big_deep": lambda: big.get(f"/gallery/?cursor={deep}", headers=htmx),
        "big_search": lambda: big.get("/gallery/?q=lighthouse"),
        "big_search_rare": lambda: big.get("/gallery/?q=zebra"),
    }
    expected_tiles = {"big_search_rare": 0}
    for name, request in cases.items():  # warm up, and check that every page answers as it should
        response = request()
        assert response.status_code == 200, (name, response.status_code)
        assert response.content.count(b'class="tile"') == expected_tiles.get(name, PAGE_SIZE), name

    from gallery.models import GalleryImage

    cases["big_count"] = lambda: GalleryImage.objects.for_team(big_team).count()
    timings = {name: [] for name in cases}
    order = list(cases)
    for round_number in range(spec["runs"]):
        # Interleaved in a new order every round, after a collection, so that drift and garbage
        # collection pauses hit every case alike.
        random.Random(round_number).shuffle(order)
        for name in order:
            gc.collect()
            started = time.perf_counter()
            cases[name]()
            timings[name].append(time.perf_counter() - started)
    common.answer(
        spec,
        {
            "insert_seconds": insert_seconds,
            **{name: statistics.median(values) for name, values in timings.items()},
            **{f"{name}_best": min(values) for name, values in timings.items()},
        },
    )


def second_team():
    from gallery.models import Team, User

    user = User.objects.create_user("small", email="small@example.com", password=None)
    return Team.create_with_owner("Small", user), user


# (b) ZIP --------------------------------------------------------------------------------------


def zips(tmp, count):
    common.heading(
        f"gallery ZIP: {count} images of ~4 MB through the real server "
        f"(client: {'curl' if CURL else 'httpx'})"
    )
    files = build_files(tmp / "files", count)
    total = sum(p.stat().st_size for p in files)
    common.note(
        f"{count} files, {common.mb(total):.0f} MB in all ({common.mb(total) / count:.1f} MB each on average)"
    )
    with common.bench_database(tmp, "seedream_bench_gallery_zip") as (url, _):
        env = common.process_env(url, tmp / "media", tmp)
        setup = common.run_child(
            "gallery", "zip-setup", {"tmp": str(tmp), "files": [str(p) for p in files]}, env
        )
        with server(env, tmp) as (port, worker_pid):
            base = f"http://127.0.0.1:{port}"
            zip_to_disk(base, setup, setup["ids"][:2], tmp / "warm.zip")  # warm-up: code paths, buffers
            before = status_of(worker_pid)
            reset = reset_peak(worker_pid)
            copies = []
            for _ in range(3):
                copies.append(copy_files(files, tmp / "copies"))
            seconds = []
            for _ in range(3):
                seconds.append(zip_to_disk(base, setup, setup["ids"], tmp / "all.zip"))
            after = status_of(worker_pid)
            zip_bytes = (tmp / "all.zip").stat().st_size
    growth = common.mb(after["VmHWM"] - before["VmRSS"])
    zip_time, copy_time = min(seconds), min(copies)
    common.table(
        ["run", "best s", "MB/s"],
        [
            ["copy the files (floor)", f"{copy_time:.3f}", f"{common.mb(total) / copy_time:.0f}"],
            [
                f"ZIP over HTTP ({common.mb(zip_bytes):.0f} MB)",
                f"{zip_time:.3f}",
                f"{common.mb(zip_bytes) / zip_time:.0f}",
            ],
        ],
    )
    print()
    common.figure(
        f"gallery ZIP of {count} × 4 MB, throughput",
        common.mb(zip_bytes) / zip_time,
        common.mb(total) / copy_time,
        unit="MB/s",
        digits=0,
        higher_is_better=True,
    )
    common.note(
        f"worker RSS before {common.mb(before['VmRSS']):.0f} MB, peak during ZIPs "
        f"{common.mb(after['VmHWM']):.0f} MB{'' if reset else ' (peak could not be reset: since start)'}"
    )
    common.limit_line(f"gallery ZIP of {count} × 4 MB, server worker peak RSS growth", growth, RSS_GOAL_MB)


def build_files(folder, count):
    """~4 MB images: half photo-like JPEGs (2600², q95 4:4:4), half PNGs (1500²); a few distinct
    pictures, copied to `count` files (distinctness changes nothing for a byte stream)."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [("jpeg", 2600, ".jpg"), ("png", 1500, ".png")]
    distinct = {}
    for kind, size, ext in kinds:
        for seed in range(3):
            path = folder / f"base-{kind}-{seed}{ext}"
            path.write_bytes(common.encode(common.photo_image(seed, size), kind))
            distinct.setdefault(kind, []).append(path)
    files = []
    for i in range(count):
        kind, _, ext = kinds[i % 2]
        source = distinct[kind][i // 2 % 3]
        target = folder / f"image-{i:02d}{ext}"
        shutil.copyfile(source, target)
        files.append(target)
    for paths in distinct.values():
        for path in paths:
            path.unlink()
    return files


def zip_setup_child(spec):
    """Rows for the files (copied into storage), a signed-in session; answers ids and cookies."""
    common.setup_django()
    import hashlib

    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.test import Client

    from gallery.images.decode import inspect_image, make_thumbnail
    from gallery.models import GalleryImage, GenerationTask

    team, user = common.migrate_and_owner()
    thumb = default_storage.save(
        "bench/thumb.webp",
        ContentFile(make_thumbnail(common.encode(common.photo_image(1, 256), "jpeg"))),
    )
    ids = []
    for i, path in enumerate(spec["files"]):
        path = Path(path)
        name = default_storage.save(f"bench/{path.name}", ContentFile(path.read_bytes()))
        data = path.read_bytes()
        task = GenerationTask.objects.create(
            team=team,
            created_by=user,
            prompt=f"A lighthouse at dusk, study {i}",
            sent_prompt=f"A lighthouse at dusk, study {i}",
            provider="sandbox",
            status="completed",
        )
        info = inspect_image(data)
        image = GalleryImage.objects.create(
            team=team,
            task=task,
            index=0,
            file=name,
            thumbnail=thumb,
            width=info.width,
            height=info.height,
            format=info.format,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        ids.append(image.pk)
    client = Client()
    client.force_login(user, backend="gallery.auth.EmailOrUsernameBackend")
    common.answer(spec, {"ids": ids, "session": client.cookies[settings.SESSION_COOKIE_NAME].value})


@contextlib.contextmanager
def server(env, tmp):
    """`granian` as `make run` starts it, with one worker process; yields (port, worker pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    granian = Path(sys.executable).with_name("granian")
    command = [
        str(granian),
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--blocking-threads",
        "8",
        "--no-ws",
        "seedream_site.wsgi:application",
    ]
    with open(tmp / "server.log", "wb") as log:
        proc = subprocess.Popen(
            command, cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the server did not start; see {tmp / 'server.log'}")
                time.sleep(0.1)
            yield port, worker_of(proc.pid)
        finally:
            common.stop_process_group(proc)


def worker_of(pid):
    """The worker process granian started (its only child), or the server itself."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def status_of(pid):
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid):
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def zip_to_disk(base, setup, ids, path):
    """Seconds to POST for a ZIP of `ids` and write it to `path`: with curl where there is one
    (a C client, as a browser is; on 2 cores a Python client would be the slowest part)."""
    if CURL:
        form = "&".join(f"ids={i}" for i in ids)
        started = time.perf_counter()
        subprocess.run(
            [
                CURL,
                "--silent",
                "--fail",
                "--output",
                str(path),
                "--cookie",
                f"sessionid={setup['session']}; csrftoken={CSRF}",
                "--header",
                f"X-CSRFToken: {CSRF}",
                "--data",
                form,
                f"{base}/gallery/download/",
            ],
            check=True,
        )
        return time.perf_counter() - started
    import httpx

    cookies = {"sessionid": setup["session"], "csrftoken": CSRF}
    started = time.perf_counter()
    with (
        httpx.Client(base_url=base, cookies=cookies, timeout=120) as client,
        client.stream(
            "POST", "/gallery/download/", data={"ids": [str(i) for i in ids]}, headers={"X-CSRFToken": CSRF}
        ) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"ZIP request answered {response.status_code}")
        with open(path, "wb") as out:
            for chunk in response.iter_raw(1024 * 1024):
                out.write(chunk)
    return time.perf_counter() - started


def copy_files(files, folder):
    common.empty_dir(folder)
    started = time.perf_counter()
    for path in files:
        shutil.copyfile(path, folder / path.name)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
