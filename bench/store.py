"""(a) Storing 15 × 4K results: the pipeline's storage path against a raw parallel download.

Images are served by a local HTTP server (127.0.0.1, a thread of this process, zero-copy
sendfile so it is not the bottleneck). Four sets of 15 distinct 4K images:
  sandbox PNG  what the sandbox provider draws (4096², ~1.3 MB, mostly flat colour)
  photo JPEG   photo-like noise and texture, 4096², q95 4:4:4 (~10 MB), like a real upstream result
  photo PNG    the same kind of picture as PNG (4096², ~30 MB), a heavy real result
  21:9 PNG     the same at 21:9 4K (6240 × 2656), uncompressed (~50 MB, near MAX_RESULT_BYTES)

Floor: the same 15 URLs downloaded at once, in 15 threads sharing one httpx client (made before
the timed part), each streamed to a file on disk: the least work that fetches the same bytes.
Measured: `gallery.pipeline.store_results(task)` on a task in STORING with those 15 result URLs,
under its lease, with a provider whose downloads go through one `gallery.providers.http.Upstream`
client as a real provider's do: STORE_PARALLEL results at once (capped streamed read +
SHA-256, one decode that checks the image and makes its thumbnail, original and thumbnail saved
through default_storage, the GalleryImage rows written by the thread holding the lease).

Each measurement runs in a fresh process, which reports its wall time and its peak RSS growth
(VmHWM after − VmRSS before, with VmHWM reset just before the timed part). Runs are interleaved
(floor, store, floor, store, …) and medians reported. `--link 1000` paces the server as one
1 Gbit/s link shared by all connections (floor and store alike), as an upstream's CDN over a
real network: what the store costs beyond the download when the download is not free. Goal: ≤ 1.5× the floor's time and ≤ 150 MB
peak RSS growth. `--parallel 1,2,4` measures several STORE_PARALLEL values (default: the
setting's default); `--profile` adds a cProfile of one measured run per set.

`--s3` (issue 16): default storage = S3 at a local s3rver (tests/s3/server.js, started here on
127.0.0.1 at a free port with its files in the temp dir, stopped at the end; needs Node.js and
`npm ci --prefix tests/s3`). The studio's S3 settings are used as a deployment sets them
(S3_BUCKET, S3_ENDPOINT_URL, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY). The measured part is the
same `store_results` (download from the local HTTP server, check, thumbnail, save to the bucket,
rows). Floor: the same 15 original files (not the thumbnails, which only the pipeline makes)
uploaded raw to the same bucket, one `put_object` each, all at once in 15 threads sharing one
boto3 client made (and its connection opened) before the timed part. The bucket is emptied
after every run. The local-disk mode above is unchanged without `--s3`.
"""

import contextlib
import functools
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import common

TIME_GOAL = 1.5
RSS_GOAL_MB = 150
SETS = [("sandbox", "sandbox PNG"), ("jpeg", "photo JPEG"), ("png", "photo PNG"), ("wide", "21:9 PNG")]
CHUNK = 256 * 1024  # as gallery.providers.http.CHUNK
DEFAULT_PARALLEL = 4  # as settings.STORE_PARALLEL
S3_BUCKET = "seedream-bench-store"


def main(argv=None):
    def extra(parser):
        parser.add_argument("--profile", action="store_true", help="also profile one measured run per set")
        parser.add_argument("--parallel", default=str(DEFAULT_PARALLEL),
                            help="STORE_PARALLEL values to measure, comma-separated (default %(default)s)")
        parser.add_argument("--sets", default=",".join(kind for kind, _ in SETS),
                            help="which sets (default %(default)s)")
        parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each (default 3)")
        parser.add_argument("--link", type=float, metavar="MBIT",
                            help="serve the images over one link of this many Mbit/s shared by all "
                                 "connections (default: loopback at full speed)")
        parser.add_argument("--s3", action="store_true",
                            help="store to S3 at a local s3rver; the floor uploads the same bytes raw with boto3")

    args = common.arguments(__doc__.splitlines()[0], argv, extra=extra)
    if args.child:
        return child(args.child, json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    count = 4 if args.quick else 15
    repeats = 1 if args.quick else args.repeats
    wanted = ["jpeg"] if args.quick else args.sets.split(",")
    sets = [s for s in SETS if s[0] in wanted]
    parallels = [int(p) for p in args.parallel.split(",")]

    if args.s3:
        return main_s3(args, count, repeats, sets, parallels)
    link = f", over a {args.link:g} Mbit/s link" if args.link else ""
    common.heading(f"store: {count} × 4K results from a local HTTP server{link}")
    with common.temp_dir("seedream-bench-store-") as tmp:
        started = time.monotonic()
        paths = common.build_images(tmp / "served", [kind for kind, _ in sets], count)
        common.note(f"built {count * len(sets)} test images in {time.monotonic() - started:.1f} s")
        with common.bench_database(tmp, "seedream_bench_store") as (database_url, db_name), \
                serve(tmp / "served", args.link) as port:
            # The results are plain http on 127.0.0.1, which the studio refuses in production.
            env = common.process_env(database_url, tmp / "media", tmp, ALLOW_HTTP_URLS="true",
                                     ALLOW_LOOPBACK_URLS="true")
            common.run_child("store", "prepare", {"tmp": str(tmp)}, env)
            common.note(f"database: {db_name}; server: http://127.0.0.1:{port}/")
            results = {}
            for kind, label in sets:
                urls = [f"http://127.0.0.1:{port}/{kind}/{p.name}" for p in paths[kind]]
                sizes = [p.stat().st_size for p in paths[kind]]
                floors, stores = [], {parallel: [] for parallel in parallels}
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    floors.append(common.run_child("store", "floor", {"tmp": str(tmp), "urls": urls}, env))
                    common.empty_dir(tmp / "downloads")
                    for parallel in parallels:
                        stores[parallel].append(common.run_child(
                            "store", "store", {"tmp": str(tmp), "urls": urls}, {**env, "STORE_PARALLEL": str(parallel)}
                        ))
                        common.empty_dir(tmp / "media")
                results[kind] = (label, sizes, floors, stores)
                if args.profile:
                    common.run_child("store", "profile", {"tmp": str(tmp), "urls": urls},
                                     {**env, "STORE_PARALLEL": str(parallels[-1])})
                    common.empty_dir(tmp / "media")
        report(count, repeats, results)


def main_s3(args, count, repeats, sets, parallels):
    """--s3: store_results with default storage = S3 at a local s3rver, against raw uploads."""
    common.heading(f"store to S3: {count} × 4K results, local s3rver vs raw boto3 uploads")
    common.note(f"machine: {common.machine()}")
    load_line("at start")
    with common.temp_dir("seedream-bench-store-") as tmp:
        started = time.monotonic()
        paths = common.build_images(tmp / "served", [kind for kind, _ in sets], count)
        common.note(f"built {count * len(sets)} test images in {time.monotonic() - started:.1f} s")
        with common.bench_database(tmp, "seedream_bench_store") as (database_url, db_name), \
                serve(tmp / "served") as port, local_s3(tmp / "s3") as s3:
            env = s3_env(common.process_env(database_url, tmp / "media", tmp, ALLOW_HTTP_URLS="true",
                                            ALLOW_LOOPBACK_URLS="true"), s3)
            common.run_child("store", "prepare", {"tmp": str(tmp)}, env)
            common.note(f"database: {db_name}; results: http://127.0.0.1:{port}/; "
                        f"S3: {s3.endpoint_url}/{S3_BUCKET} (s3rver pid {s3.process.pid}, files in {tmp / 's3'})")
            results, loads = {}, []
            for kind, label in sets:
                urls = [f"http://127.0.0.1:{port}/{kind}/{p.name}" for p in paths[kind]]
                sizes = [p.stat().st_size for p in paths[kind]]
                floors, stores = [], {parallel: [] for parallel in parallels}
                floor_spec = {"tmp": str(tmp), "paths": [str(p) for p in paths[kind]]}
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    loads.append(os.getloadavg()[0])
                    floors.append(common.run_child("store", "s3floor", floor_spec, env))
                    empty_bucket(s3.client)
                    for parallel in parallels:
                        loads.append(os.getloadavg()[0])
                        stores[parallel].append(common.run_child(
                            "store", "store", {"tmp": str(tmp), "urls": urls}, {**env, "STORE_PARALLEL": str(parallel)}
                        ))
                        empty_bucket(s3.client)
                        common.empty_dir(tmp / "media")
                results[kind] = (label, sizes, floors, stores)
                if args.profile:
                    common.run_child("store", "profile", {"tmp": str(tmp), "urls": urls},
                                     {**env, "STORE_PARALLEL": str(parallels[-1])})
                    empty_bucket(s3.client)
        print(f"\n  floor: the {count} originals put raw into the bucket at once ({count} threads, one boto3 client);")
        print("  thumbnails are not in the floor (the pipeline makes and uploads them; their bytes below)")
        report(count, repeats, results, title="store to S3")
        rows = []
        for label, sizes, floors, stores in results.values():
            for parallel, runs in stores.items():
                rows.append([label, parallel, f"{common.mb(sum(sizes)):.1f} MB",
                             f"{common.mb(statistics.median(r['thumb_bytes'] for r in runs)):.2f} MB"])
        common.table(["set", "parallel", "originals (floor and store)", "thumbnails (store only)"], rows)
        common.note(f"load average (1 min) before each run: {min(loads):.2f}–{max(loads):.2f} "
                    f"(median {statistics.median(loads):.2f})")
    load_line("at the end")


def load_line(when):
    one, five, _ = os.getloadavg()
    busy = "  — something else is using the CPUs; figures will be noisy" if one > 0.5 else ""
    common.note(f"load average (1 / 5 min) {when}: {one:.2f} / {five:.2f} on {os.cpu_count()} CPUs{busy}")


@contextlib.contextmanager
def local_s3(folder):
    """The test suite's s3rver (tests/s3/server.py) with one bucket; stopped at the end. Its stdin
    is a pipe from this process, so it also stops if this process dies."""
    if str(common.ROOT) not in sys.path:
        sys.path.insert(0, str(common.ROOT))
    from tests.s3 import server

    why = server.unavailable()
    if why:
        raise SystemExit(f"--s3: {why}")
    folder.mkdir(parents=True, exist_ok=True)
    s3 = server.LocalS3(folder)
    try:
        s3.client.create_bucket(Bucket=S3_BUCKET)
        yield s3
    finally:
        s3.stop()


def s3_env(env, s3):
    """The environment of a process whose default storage is the local bucket, set through the
    studio's own settings (seedream_site/settings.py, s3_storage)."""
    from tests.s3 import server

    env = {**env, "S3_BUCKET": S3_BUCKET, "S3_ENDPOINT_URL": s3.endpoint_url,
           "S3_ACCESS_KEY_ID": server.ACCESS_KEY, "S3_SECRET_ACCESS_KEY": server.SECRET_KEY}
    for name in server.DEFAULTED:  # settings.py's defaults, whatever this shell has set
        env.pop(name, None)
    return env


def empty_bucket(client):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET)
    keys = [{"Key": item["Key"]} for page in pages for item in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=S3_BUCKET, Delete={"Objects": keys[start:start + 1000]})


def seconds(runs, pick=statistics.median):
    return pick(r["seconds"] for r in runs)


def report(count, repeats, results, title="store"):
    print(f"\n  median of {repeats} interleaved run(s) each (best in brackets); RSS growth is the largest seen")
    rows = []
    for label, sizes, floors, stores in results.values():
        floor = seconds(floors)
        for parallel, runs in stores.items():
            store = seconds(runs)
            rows.append([
                label, parallel, f"{common.mb(sum(sizes) / len(sizes)):.1f} MB", f"{common.mb(sum(sizes)):.0f} MB",
                f"{floor:.2f} ({seconds(floors, min):.2f})", f"{store:.2f} ({seconds(runs, min):.2f})",
                f"{store / floor:.2f}×",
                f"{max(common.mb(f['rss_growth']) for f in floors):.0f} MB",
                f"{max(common.mb(s['rss_growth']) for s in runs):.0f} MB",
            ])
    common.table(["set", "parallel", "each", "total", "floor s", "store s", "ratio", "floor RSS+",
                  "store RSS+"], rows)
    print()
    for label, sizes, floors, stores in results.values():
        for parallel, runs in stores.items():
            common.figure(f"{title} {count}×4K {label}, STORE_PARALLEL={parallel}", seconds(runs), seconds(floors),
                          goal=TIME_GOAL)
            common.limit_line(f"{title} {count}×4K {label}, STORE_PARALLEL={parallel}, peak RSS growth",
                              max(common.mb(s["rss_growth"]) for s in runs), RSS_GOAL_MB)
    print("\n  where the measured time goes (median run; thread-seconds summed over the images, so with")
    print("  several at once the phases add up to more than the wall time)")
    rows = []
    for label, sizes, floors, stores in results.values():
        for parallel, runs in stores.items():
            middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            rows += [[label if i == 0 else "", parallel if i == 0 else "", name, f"{spent:.2f}"]
                     for i, (name, spent) in enumerate(middle["phases"].items())]
            rows.append(["", "", "wall time", f"{middle['seconds']:.2f}"])
    common.table(["set", "parallel", "phase", "s"], rows)


# The local server -----------------------------------------------------------------------------


class FileHandler(BaseHTTPRequestHandler):
    """GET of a file under the served folder, sent with sendfile(2); anything else is 404."""

    folder: Path
    link = None  # a Link when --link is given: all connections share its bandwidth
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path = (self.folder / self.path.lstrip("/")).resolve()
        if self.folder not in path.parents or not path.is_file():
            self.send_error(404)
            return
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg" if path.suffix == ".jpg" else "image/png")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            if self.link is None:
                self.connection.sendfile(f)
                return
            for offset in range(0, size, CHUNK):  # paced by the shared link, one chunk at a time
                self.link.wait_to_send(min(CHUNK, size - offset))
                self.connection.sendfile(f, offset, CHUNK)

    def log_message(self, *args):
        pass


class Link:
    """One network link of `mbit` Mbit/s shared by every connection: each chunk is sent when the
    link is free for it, as an upstream's CDN behind a real network would pace it."""

    def __init__(self, mbit):
        self.bytes_per_second = mbit * 1_000_000 / 8
        self.free_at = 0.0
        self.lock = threading.Lock()

    def wait_to_send(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(now, self.free_at)
            self.free_at = start + n / self.bytes_per_second
        time.sleep(max(0.0, start - now))


@contextlib.contextmanager
def serve(folder, link_mbit=None):
    handler = type("Handler", (FileHandler,), {"folder": Path(folder).resolve(),
                                               "link": Link(link_mbit) if link_mbit else None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-http", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# Child processes: one measurement each ---------------------------------------------------------


def child(role, spec):
    if role == "floor":
        return common.answer(spec, floor(spec))
    if role == "s3floor":
        return common.answer(spec, s3_floor(spec))
    common.setup_django()
    if role == "prepare":
        common.migrate_and_owner()
        return common.answer(spec, {})
    return common.answer(spec, store(spec, profile=role == "profile"))


def floor(spec):
    """Every URL at once (one thread each, one shared client), streamed to a file on disk."""
    import httpx

    folder = Path(spec["tmp"]) / "downloads"
    folder.mkdir(exist_ok=True)
    urls = spec["urls"]
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=len(urls)))

    def fetch(job):
        index, url = job
        with client.stream("GET", url) as response:
            response.raise_for_status()
            with open(folder / f"{index}.bin", "wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)

    def run():
        with ThreadPoolExecutor(len(urls)) as pool:
            list(pool.map(fetch, enumerate(urls)))

    with client:
        return measure(run)


def s3_floor(spec):
    """Every original put raw into the bucket at once (one thread each, one shared boto3 client,
    made and connected before the timed part), from the files on disk."""
    import boto3
    from botocore.config import Config

    paths = spec["paths"]
    bucket = os.environ["S3_BUCKET"]
    client = boto3.client(
        "s3", endpoint_url=os.environ["S3_ENDPOINT_URL"], aws_access_key_id=os.environ["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"], region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=len(paths)),
    )
    client.head_bucket(Bucket=bucket)  # loads the service model and opens a connection

    def put(job):
        index, path = job
        with open(path, "rb") as f:
            client.put_object(Bucket=bucket, Key=f"floor/{index}{Path(path).suffix}", Body=f)

    def run():
        with ThreadPoolExecutor(len(paths)) as pool:
            list(pool.map(put, enumerate(paths)))

    result = measure(run)
    stored = client.list_objects_v2(Bucket=bucket, Prefix="floor/")
    sizes = sorted(item["Size"] for item in stored.get("Contents", []))
    if sizes != sorted(os.path.getsize(p) for p in paths):
        raise SystemExit(f"the floor stored {len(sizes)} objects, not the {len(paths)} files it put")
    return result


def store(spec, profile=False):
    from gallery import pipeline
    from gallery.models import GalleryImage, GenerationTask, Status, Team, User
    from gallery.providers.http import Upstream

    class Provider:
        """Downloads through one client, as EvoLink's and BytePlus's open_result do."""

        name = "bench"

        def __init__(self):
            self.http = Upstream("Bench", {})

        def open_result(self, url):
            return self.http.open_result(url)

    urls = spec["urls"]
    task = GenerationTask.objects.create(
        team=Team.objects.get(name="Bench"), created_by=User.objects.get(username="bench"),
        prompt="bench", sent_prompt="bench", provider="sandbox", n=len(urls), quality="4K", size="1:1",
        status=Status.STORING, result_urls=urls,
    )
    assert task.take_lease()
    provider = Provider()
    pipeline.get_provider = lambda name: provider
    warm_up()
    phases, lock = {}, threading.Lock()
    if not profile:
        for name, attribute in [
            ("download + SHA-256 (read_capped)", "read_capped"),
            ("decode once: check + thumbnail (check_with_thumbnail)", "check_with_thumbnail"),
            ("save original + thumbnail (save_exactly)", "save_exactly"),
            ("rows, on the lease's thread (record_result)", "record_result"),
        ]:
            setattr(pipeline, attribute, timed(phases, lock, name, getattr(pipeline, attribute)))
        if os.environ.get("S3_BUCKET"):
            time_s3_storage(phases, lock)

    def run():
        pipeline.store_results(task)

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()  # the main thread only: the waiting, the rows and the lease
        result = measure(lambda: profiler.runcall(run))
        print(f"\n  cProfile of the lease's thread in one run ({len(urls)} images, {result['seconds']:.2f} s):")
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(12)
    else:
        result = measure(run)
    task.refresh_from_db()
    stored = GalleryImage.objects.filter(task=task).count()
    if stored != len(urls) or task.status != Status.COMPLETED:
        raise SystemExit(f"only {stored} of {len(urls)} images were stored ({task.status}: {task.error_message})")
    thumb_bytes = 0
    if os.environ.get("S3_BUCKET"):  # make sure the bucket, not local disk, was measured
        from django.core.files.storage import default_storage

        if type(default_storage._wrapped).__name__ != "S3Storage":
            raise SystemExit(f"default storage is {type(default_storage._wrapped).__name__}, not S3Storage")
        for image in GalleryImage.objects.filter(task=task):
            if default_storage.size(image.file.name) != image.bytes:
                raise SystemExit(f"{image.file.name} in the bucket is not the {image.bytes} bytes downloaded")
            thumb_bytes += default_storage.size(image.thumbnail.name)
    return {**result, "phases": phases, "thumb_bytes": thumb_bytes}


def time_s3_storage(phases, lock):
    """Splits save_exactly's time on S3: each thread's boto3 resource (django-storages makes one
    per thread, on its first request), the HEAD before saving, and the uploads."""
    from django.core.files.storage import default_storage

    default_storage._setup()
    storage = default_storage._wrapped
    cls = type(storage)
    original = cls.connection.fget
    label = "  in save: a boto3 session + resource per thread (S3Storage.connection)"
    make = timed(phases, lock, label, original)

    def connection(self):
        if getattr(self._connections, "connection", None) is not None:
            return self._connections.connection
        return make(self)

    cls.connection = property(connection)
    for name, attribute in [
        ("  in save: HEAD (exists), incl. the thread's first connection", "exists"),
        ("  in save: upload (S3Storage._save: upload_fileobj)", "_save"),
        ("  in save: delete", "delete"),
    ]:
        setattr(storage, attribute, timed(phases, lock, name, getattr(storage, attribute)))


def warm_up():
    """Loads Pillow's plugins (JPEG, PNG, WebP) and httpx before the baseline is taken."""
    import io

    import httpx
    from PIL import Image

    from gallery.images.decode import inspect_image, make_thumbnail

    for kind in ("JPEG", "PNG"):
        out = io.BytesIO()
        Image.new("RGB", (64, 64), "orange").save(out, kind)
        inspect_image(out.getvalue())
        make_thumbnail(out.getvalue())
    httpx.Client().close()


def timed(phases, lock, name, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            with lock:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def measure(work):
    """Wall time and peak RSS growth of work() in this process."""
    import gc

    gc.collect()
    before = common.vm_status()["VmRSS"]
    exact = common.reset_peak_rss()
    if not exact:
        before = common.vm_status()["VmHWM"]  # growth is then a lower bound
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    after = common.vm_status()
    return {"seconds": elapsed, "rss_growth": max(0, after["VmHWM"] - before),
            "rss_kept": after["VmRSS"] - before, "exact_peak": exact}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C: the clean-up has run; exit without a traceback
        sys.exit(130)
