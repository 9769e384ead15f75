"""(a) Storing 15 × 4K results: the pipeline's storage path against a raw parallel download.

Images are served by a local HTTP server (127.0.0.1, a thread of this process, zero-copy
sendfile so it is not the bottleneck). Three sets of 15 distinct 4096 × 4096 images:
  sandbox PNG  what the sandbox provider draws (~1.3 MB, mostly flat colour)
  photo JPEG   photo-like noise and texture, q95 4:4:4 (~10 MB), like a real upstream result
  photo PNG    the same kind of picture as PNG (~30 MB), a heavy real result

Floor: the same 15 URLs downloaded with httpx in 15 threads, streamed to files on disk.
Measured: `gallery.pipeline.store_one(task, provider, index, url)` for each image, one after the
other as the pipeline does today, with a provider whose open_result is
`gallery.providers.http.open_url` (capped streamed read + SHA-256, Pillow verify, thumbnail,
original and thumbnail saved through default_storage, GalleryImage row).

Each measurement runs in a fresh process, which reports its wall time and its peak RSS growth
(VmHWM after − VmRSS before, with VmHWM reset just before the timed part). Goal: ≤ 1.5× the
floor's time and ≤ 150 MB peak RSS growth. `--profile` adds a cProfile of one measured run per set.
"""

import contextlib
import functools
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import common

TIME_GOAL = 1.5
RSS_GOAL_MB = 150
SETS = [("sandbox", "sandbox PNG"), ("jpeg", "photo JPEG"), ("png", "photo PNG")]
CHUNK = 256 * 1024  # as gallery.providers.http.CHUNK


def main(argv=None):
    args = common.arguments(__doc__.splitlines()[0], argv,
                            extra=lambda p: p.add_argument("--profile", action="store_true",
                                                           help="also profile one measured run per set"))
    if args.child:
        return child(args.child, json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    count = 4 if args.quick else 15
    repeats = 1 if args.quick else 2
    sets = [s for s in SETS if s[0] == "jpeg"] if args.quick else SETS

    common.heading(f"store: {count} × 4K results from a local HTTP server")
    with common.temp_dir("seedream-bench-store-") as tmp:
        started = time.monotonic()
        paths = common.build_images(tmp / "served", [kind for kind, _ in sets], count)
        common.note(f"built {count * len(sets)} test images in {time.monotonic() - started:.1f} s")
        with common.bench_database(tmp, "seedream_bench_store") as (database_url, db_name), \
                serve(tmp / "served") as port:
            env = common.process_env(database_url, tmp / "media", tmp)
            common.run_child("store", "prepare", {"tmp": str(tmp)}, env)
            common.note(f"database: {db_name}; server: http://127.0.0.1:{port}/")
            results = {}
            for kind, label in sets:
                urls = [f"http://127.0.0.1:{port}/{kind}/{p.name}" for p in paths[kind]]
                sizes = [p.stat().st_size for p in paths[kind]]
                floors, stores = [], []
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    floors.append(common.run_child("store", "floor", {"tmp": str(tmp), "urls": urls}, env))
                    common.empty_dir(tmp / "downloads")
                    stores.append(common.run_child("store", "store", {"tmp": str(tmp), "urls": urls}, env))
                    common.empty_dir(tmp / "media")
                results[kind] = (label, sizes, floors, stores)
                if args.profile:
                    common.run_child("store", "profile", {"tmp": str(tmp), "urls": urls}, env)
                    common.empty_dir(tmp / "media")
        report(count, repeats, results)


def report(count, repeats, results):
    print(f"\n  best of {repeats} run(s) each; RSS growth is the largest seen")
    rows = []
    for kind, (label, sizes, floors, stores) in results.items():
        floor, store = min(f["seconds"] for f in floors), min(s["seconds"] for s in stores)
        rows.append([
            label, count, f"{common.mb(sum(sizes) / len(sizes)):.1f} MB", f"{common.mb(sum(sizes)):.0f} MB",
            f"{floor:.2f}", f"{store:.2f}", f"{store / floor:.2f}×",
            f"{max(common.mb(f['rss_growth']) for f in floors):.0f} MB",
            f"{max(common.mb(s['rss_growth']) for s in stores):.0f} MB",
        ])
    common.table(["set", "images", "each", "total", "floor s", "store s", "ratio", "floor RSS+", "store RSS+"],
                 rows)
    print()
    for kind, (label, sizes, floors, stores) in results.items():
        floor, store = min(f["seconds"] for f in floors), min(s["seconds"] for s in stores)
        common.figure(f"store {count}×4K {label}", store, floor, goal=TIME_GOAL)
        common.limit_line(f"store {count}×4K {label} peak RSS growth",
                          max(common.mb(s["rss_growth"]) for s in stores), RSS_GOAL_MB)
    print("\n  where the measured time goes (best run; seconds summed over the images)")
    rows = []
    for kind, (label, sizes, floors, stores) in results.items():
        best = min(stores, key=lambda s: s["seconds"])
        phases = dict(best["phases"])
        phases["other (connect, DB, reads)"] = best["seconds"] - sum(phases.values())
        rows += [[label if i == 0 else "", name, f"{seconds:.2f}", f"{100 * seconds / best['seconds']:.0f} %"]
                 for i, (name, seconds) in enumerate(phases.items())]
    common.table(["set", "phase", "s", "share"], rows)


# The local server -----------------------------------------------------------------------------


class FileHandler(BaseHTTPRequestHandler):
    """GET of a file under the served folder, sent with sendfile(2); anything else is 404."""

    folder: Path
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
            self.connection.sendfile(f)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    handler = type("Handler", (FileHandler,), {"folder": Path(folder).resolve()})
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
    common.setup_django()
    if role == "prepare":
        common.migrate_and_owner()
        return common.answer(spec, {})
    return common.answer(spec, store(spec, profile=role == "profile"))


def floor(spec):
    """Every URL at once (one thread and one client each), streamed to a file on disk."""
    import httpx

    folder = Path(spec["tmp"]) / "downloads"
    folder.mkdir(exist_ok=True)

    def fetch(job):
        index, url = job
        with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
            response.raise_for_status()
            with open(folder / f"{index}.bin", "wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)

    httpx.Client().close()  # imports and first-use costs outside the timed part
    def run():
        with ThreadPoolExecutor(len(spec["urls"])) as pool:
            list(pool.map(fetch, enumerate(spec["urls"])))

    return measure(run)


def store(spec, profile=False):
    from gallery import pipeline
    from gallery.models import GalleryImage, GenerationTask, Status, Team, User
    from gallery.providers.http import open_url

    class Provider:
        name = "bench"

        def open_result(self, url):
            return open_url(url)

    urls = spec["urls"]
    task = GenerationTask.objects.create(
        team=Team.objects.get(name="Bench"), created_by=User.objects.get(username="bench"),
        prompt="bench", sent_prompt="bench", provider="sandbox", n=len(urls), quality="4K", size="1:1",
        status=Status.STORING, result_urls=urls,
    )
    provider = Provider()
    warm_up()
    phases = {}
    if not profile:
        for name, module, attribute in [
            ("download + SHA-256 (read_capped)", pipeline, "read_capped"),
            ("decode once: check + thumbnail (check_with_thumbnail)", pipeline, "check_with_thumbnail"),
            ("save original + thumbnail", pipeline, "save_exactly"),
        ]:
            setattr(module, attribute, timed(phases, name, getattr(module, attribute)))

    def run():
        for index, url in enumerate(urls):
            pipeline.store_one(task, provider, index, url)

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = measure(lambda: profiler.runcall(run))
        print(f"\n  cProfile of one measured run ({len(urls)} images, {result['seconds']:.2f} s), by own time:")
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(12)
    else:
        result = measure(run)
    stored = GalleryImage.objects.filter(task=task)
    if stored.count() != len(urls):
        raise SystemExit(f"only {stored.count()} of {len(urls)} images were stored")
    return {**result, "phases": phases}


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


def timed(phases, name, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
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
    seconds = time.perf_counter() - started
    after = common.vm_status()
    return {"seconds": seconds, "rss_growth": max(0, after["VmHWM"] - before),
            "rss_kept": after["VmRSS"] - before, "exact_peak": exact}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C: the clean-up has run; exit without a traceback
        sys.exit(130)
