"""What the benchmark scripts share: printing figures, temporary places, Django set-up in a
throwaway database, child processes, memory readings and the test images."""

import argparse
import contextlib
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"

# Settings every benchmark process gets: no secret file written next to manage.py, quiet logs.
BASE_ENV = {
    "SECRET_KEY": "benchmarks-only-not-secret",
    "DJANGO_SETTINGS_MODULE": "seedream_site.settings",
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
}


# Command line and output ----------------------------------------------------------------------


def arguments(description, argv=None, extra=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short form: fewer images, fewer runs")
    # Internal: a benchmark re-runs itself as a child process for one isolated measurement.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    if extra:
        extra(parser)
    return parser.parse_args(argv)


def heading(text):
    print(f"\n== {text} ==", flush=True)


def note(text):
    print(f"  {text}", flush=True)


NUMBER = re.compile(r"^[-+]?[\d.,]+\s?(×|%|s|ms|MB)?$|^-$")


def table(headers, rows):
    """A plain aligned table; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        out = []
        for i, cell in enumerate(row):
            out.append(cell.rjust(widths[i]) if i and NUMBER.match(cell) else cell.ljust(widths[i]))
        return "  " + "  ".join(out).rstrip()

    print(line(cells[0]))
    print("  " + "  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def figure(label, measured, floor, goal=None, unit="s", digits=2, higher_is_better=False):
    """One result line: `store 15×4K: 2.31 s vs floor 1.80 s → 1.28× (goal ≤ 1.5×)`.

    The ratio is always "how many times worse than the floor": time / floor time, or for rates
    (higher_is_better) floor rate / rate.
    """
    ratio = (floor / measured) if higher_is_better else (measured / floor)
    if goal is None:
        verdict = "(no goal set)"
    else:
        verdict = f"(goal ≤ {goal:g}×){'' if ratio <= goal else '  OVER GOAL'}"
    print(f"{label}: {measured:.{digits}f} {unit} vs floor {floor:.{digits}f} {unit} → {ratio:.2f}× {verdict}",
          flush=True)
    return ratio


def limit_line(label, value, limit, unit="MB"):
    verdict = "" if value <= limit else "  OVER GOAL"
    print(f"{label}: {value:.0f} {unit} (goal ≤ {limit:g} {unit}){verdict}", flush=True)


def mb(n_bytes):
    return n_bytes / (1024 * 1024)


# Temporary places and clean-up ----------------------------------------------------------------


@contextlib.contextmanager
def temp_dir(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def empty_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def exit_cleanly_on_sigterm():
    """SIGTERM (and SIGHUP) raise SystemExit so `finally` blocks remove temp files and servers."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


# Django and databases -------------------------------------------------------------------------


def process_env(database_url, media_root, tmp, **extra):
    """The environment of a process that runs Django against the benchmark's own database."""
    env = {**os.environ, **BASE_ENV, "DATABASE_URL": database_url, "MEDIA_ROOT": str(media_root),
           "TMPDIR": str(tmp)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def setup_django():
    """django.setup() with the environment already in place (DATABASE_URL, MEDIA_ROOT, …)."""
    for key, value in BASE_ENV.items():
        os.environ.setdefault(key, value)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def migrate_and_owner():
    """Migrates the (empty) database and returns (team, user) to own the benchmark's tasks."""
    from django.core.management import call_command

    from gallery.models import Team, User

    call_command("migrate", verbosity=0)
    user = User.objects.filter(username="bench").first()
    if user is None:
        user = User.objects.create_user("bench", email="bench@example.com", password=None)
    team = Team.objects.filter(memberships__user=user).first() or Team.create_with_owner("Bench", user)
    return team, user


def postgres_server_url():
    """Where PostgreSQL runs: BENCH_POSTGRES_URL, else DATABASE_URL's server if it is PostgreSQL,
    else the local default. Only the server is used: benchmarks make their own databases."""
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = DEFAULT_POSTGRES
    return url


def _with_db(url, name):
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


class PostgresUnavailable(Exception):
    pass


@contextlib.contextmanager
def fresh_postgres(name):
    """A new, empty PostgreSQL database `name`, dropped at the end (even with connections open)."""
    try:
        import psycopg
    except ImportError as e:
        raise PostgresUnavailable("psycopg is not installed") from e
    server = postgres_server_url()
    admin_url = _with_db(server, "postgres")
    try:
        admin = psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True,
                                connect_timeout=3)
    except Exception as e:  # refused, no such role, timeout …
        raise PostgresUnavailable(f"{admin_url}: {str(e).strip().splitlines()[0]}") from e
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    with admin:
        admin.execute(drop)
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_db(server, name)
        finally:
            try:
                admin.execute(drop)
            except psycopg.OperationalError:  # the server restarted meanwhile (bench/drills.py does)
                with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True,
                                     connect_timeout=10) as again:
                    again.execute(drop)


@contextlib.contextmanager
def bench_database(tmp, pg_name):
    """A SQLite file in tmp, or a fresh PostgreSQL database when DATABASE_URL is PostgreSQL
    (the database named in DATABASE_URL itself is never touched)."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        with fresh_postgres(pg_name) as url:
            yield url, "PostgreSQL"
    else:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}", "SQLite"


@contextlib.contextmanager
def named_database(name, tmp, pg_name, file_name):
    """The database a benchmark runs on by name: a fresh PostgreSQL database (dropped after),
    or a SQLite file in tmp (deleted after, with its WAL files)."""
    if name == "PostgreSQL":
        with fresh_postgres(pg_name) as url:
            yield url
        return
    path = tmp / file_name
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# Child processes ------------------------------------------------------------------------------


def run_child(module, role, spec, env, timeout=600):
    """Runs `python -m bench.<module> --child <role>` with a JSON spec; returns its JSON answer."""
    answer = Path(spec["tmp"]) / f"answer-{role}-{time.monotonic_ns()}.json"
    spec = {**spec, "answer": str(answer)}
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", "--child", role, "--spec", json.dumps(spec)],
        cwd=ROOT, env=env,
    )
    try:
        code = proc.wait(timeout)
    except BaseException:
        # Interrupted or timed out: SIGTERM lets the child stop its own processes and clean up.
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"bench.{module} child {role!r} exited with {code}")
    try:
        return json.loads(answer.read_text())
    finally:
        answer.unlink(missing_ok=True)


def answer(spec, data):
    Path(spec["answer"]).write_text(json.dumps(data))


def stop_process_group(proc, grace=5.0):
    """SIGTERM to the child's whole process group, SIGKILL if it is still there after `grace`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# Memory ---------------------------------------------------------------------------------------


def vm_status():
    """VmRSS and VmHWM (peak RSS) of this process, in bytes."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# The machine ----------------------------------------------------------------------------------


def machine():
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import PIL

    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"Pillow {PIL.__version__}, {platform.system()} {platform.release()}")


# Test images ----------------------------------------------------------------------------------

SIZE = 4096
WIDE = (6240, 2656)  # 21:9 at 4K
_grain = None


def _shared_grain(width, height):
    """Fine film-like grain (σ 4 per channel), made once per process: it is the slow part."""
    global _grain
    from PIL import Image

    if _grain is None or _grain.size != (width, height):
        _grain = Image.merge("RGB", [Image.effect_noise((width, height), 4) for _ in range(3)])
    return _grain


def photo_image(seed, size=SIZE, height=None):
    """A photo-like RGB image: a smooth colour field, mid-scale mottling and fine grain.

    Each seed gives a different image (different colours, mottling and grain offset); its JPEG
    (q95, 4:4:4) is ~10 MB and its PNG ~30 MB at 4096², about what a real 4K result weighs.
    `size` × `height` (square if no height).
    """
    from PIL import Image, ImageChops

    width, height = size, height or size
    rng = random.Random(seed)
    grid = Image.new("RGB", (6, 6))
    for y in range(6):
        for x in range(6):
            grid.putpixel((x, y), tuple(rng.randrange(30, 225) for _ in range(3)))
    base = grid.resize((width, height), Image.Resampling.BICUBIC)
    small = (max(1, width // 32), max(1, height // 32))
    mottle = Image.merge("RGB", [Image.effect_noise(small, 30) for _ in range(3)])
    mottle = mottle.resize((width, height), Image.Resampling.BICUBIC)
    grain = ImageChops.offset(_shared_grain(width, height), rng.randrange(width), rng.randrange(height))
    return ImageChops.add(ImageChops.add(base, mottle, 1.0, -128), grain, 1.0, -128)


def encode(image, kind):
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, "JPEG", quality=95, subsampling=0)
    elif kind == "stored png":  # no compression: the largest file a picture of this size makes
        image.save(out, "PNG", compress_level=0)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def sandbox_png(index, count, size=SIZE):
    """What the sandbox provider returns for a 4K 1:1 task (a ~1.3 MB PNG)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from gallery.images.sandbox import render_sandbox_image

    prompt = "A lighthouse at dusk, long exposure, waves breaking on the rocks below"
    return render_sandbox_image(prompt, size, size, [], index, count)


EXTENSION = {"sandbox": ".png", "jpeg": ".jpg", "png": ".png", "wide": ".png"}


def _build_one(job):
    kind, index, count, path, size = job
    if kind == "sandbox":
        data = sandbox_png(index, count, size)
    elif kind == "wide":  # 21:9 4K, uncompressed PNG: ~50 MB, near MAX_RESULT_BYTES
        data = encode(photo_image(index, *WIDE), "stored png")
    else:
        data = encode(photo_image(index, size), kind)
    Path(path).write_bytes(data)
    return len(data)


def build_images(folder, kinds, count, size=SIZE):
    """Writes `count` distinct images of each kind into folder/<kind>/; returns
    {kind: [paths]}. Uses every core: a 4K PNG takes a second or two to encode."""
    from concurrent.futures import ProcessPoolExecutor

    jobs, paths = [], {}
    for kind in kinds:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        paths[kind] = [folder / kind / f"{kind}-{i:02d}{EXTENSION[kind]}" for i in range(count)]
        jobs += [(kind, i, count, str(p), size) for i, p in enumerate(paths[kind])]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_build_one, jobs))
    return paths


GALLERY_WORDS = ["lighthouse", "fox", "perfume bottle", "city at night", "astronaut", "island map"]


def gallery_prompt(i):
    return f"A {GALLERY_WORDS[i % len(GALLERY_WORDS)]}, study {i}"


def bulk_images(team, user, count, batch=5000, prompt=gallery_prompt):
    """`count` images newest first, one task each (image i's prompt is `prompt(i)`), sharing one
    real original and thumbnail. Returns the images."""
    import hashlib
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from gallery.images.decode import make_thumbnail
    from gallery.models import GalleryImage, GenerationTask

    data = encode(photo_image(1, 256), "jpeg")
    original = default_storage.save(f"bench/{team.pk}/original.jpg", ContentFile(data))
    thumbnail = default_storage.save(f"bench/{team.pk}/thumb.webp", ContentFile(make_thumbnail(data)))
    digest = hashlib.sha256(data).hexdigest()
    now = timezone.now()
    made = []
    for start in range(0, count, batch):
        tasks = GenerationTask.objects.bulk_create(
            GenerationTask(
                team=team,
                created_by=user,
                prompt=prompt(i),
                sent_prompt=prompt(i),
                provider="sandbox",
                status="completed",
                created_at=now - timedelta(seconds=i),
                deadline_at=now,
                storage_key=f"b{i}",
            )
            for i in range(start, min(start + batch, count))
        )
        made += GalleryImage.objects.bulk_create(
            GalleryImage(
                team=team,
                task=task,
                index=0,
                file=original,
                thumbnail=thumbnail,
                width=256,
                height=256,
                format="JPEG",
                bytes=len(data),
                sha256=digest,
                created_at=task.created_at,
            )
            for task in tasks
        )
    if any(image.pk is None for image in made):  # databases that do not return ids from bulk inserts
        made = list(GalleryImage.objects.for_team(team).newest_first())
    return made
