"""(e) The studio's history poll through the real server, against a bare view on the same server.

History: 20 tasks of n = 15 (1 queued, 2 running, 1 failed, 16 completed with 15 images each:
240 image rows, bulk-created, all pointing at one small real original and WebP thumbnail in
storage; no pipeline runs). Server: `make run`'s (granian, WSGI, 2 workers, 8 blocking threads,
--no-ws) on 127.0.0.1 at a free port, with the settings module bench.poll_settings (the app's
settings; its URLconf bench.poll_urls adds /bench/bare/). Every request carries a signed-in
member's session cookie and HX-Request: true. Three requests:
  bare       GET /bench/bare/ → 200 "ok": the floor (all the middleware, no view work)
  changed    GET /history/?v=<current, but one row older> → 200: that row alone (out of band),
             the poller and the counts (per-row updates: what a poll sends while a task runs)
  full       GET /history/?v=<stale> → 200, the whole fragment (20 rows, 240 thumbnails): what a
             poll sends when the list itself changed (a task came or went); shown for reference
  unchanged  GET /history/?v=<current> → 204
Load: Debian's wrk (1 thread, 16 connections, keep-alive) on the same machine; if wrk is not
installed, a threaded httpx client (16 threads), which is far slower and shares the CPUs with the
server — the output says which. A warm-up, then each request for 10 s (3 s with --quick) in
interleaved rounds; figures are requests/s (all requests / all time) and p95 latency (the worse
round's). Goals: changed ≥ 0.7× the bare view's requests/s, unchanged ≥ 0.9× — printed as
bare/poll ratios (goal ≤ 1.43×, ≤ 1.11×) like the other benchmarks, with the fraction after.
On SQLite (a temp file) and PostgreSQL (a fresh database `seedream_bench_poll`, dropped at the
end; skipped with a note if not reachable). The share of CPU time other processes took during the
measurement is shown (from /proc): above 5% the figures are noisy. Before the server starts, the
same three requests are timed in-process through Django's test client (no HTTP); --profile adds
cProfile's hotspots of the two polls there.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import common

CHANGED_GOAL, UNCHANGED_GOAL = 0.7, 0.9  # of the bare view's requests/s
CONNECTIONS = 16  # = 2 workers × 8 blocking threads: every server thread has a request to do
TASKS, IMAGES_PER_TASK = 20, 15
STALE = "0" * 16  # a version no history has
PG_NAME = "seedream_bench_poll"
CASES = ("bare", "changed", "full", "unchanged")
LABELS = {"bare": "bare view (floor)", "changed": "poll, one row changed (200)", "full": "poll, list changed (200)",
          "unchanged": "poll, unchanged (204)"}
EXPECTED = {"bare": 200, "changed": 200, "full": 200, "unchanged": 204}


def main(argv=None):
    def extra(parser):
        parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto",
                            help="load generator (auto: wrk if installed, else httpx)")
        parser.add_argument("--profile", action="store_true", help="print cProfile hotspots of the polls")

    args = common.arguments(__doc__.splitlines()[0], argv, extra)
    if args.child:
        return {"setup": setup_child}[args.child](json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "httpx"
    if client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    seconds, rounds = (3, 1) if args.quick else (10, 2)
    common.heading(f"history poll: {TASKS} tasks ({TASKS - 4} × {IMAGES_PER_TASK} images) through granian "
                   "(2 workers × 8 threads) vs a bare view")
    if client == "wrk":
        common.note(f"load: wrk, 1 thread, {CONNECTIONS} connections, {seconds} s per request "
                    f"in {rounds} round(s)")
    else:
        common.note(f"load: httpx, {CONNECTIONS} threads (wrk is not installed: apt-get install -y wrk). "
                    "A Python client shares the CPUs with the server: rates are lower than wrk's, and the "
                    "ratios are flattened towards 1")
    results, failed = {}, []
    with common.temp_dir("seedream-bench-poll-") as tmp:
        for name in ("SQLite", "PostgreSQL"):
            try:
                with common.named_database(name, tmp, PG_NAME, "poll.sqlite3") as url:
                    env = common.process_env(url, tmp / "media", tmp,
                                             DJANGO_SETTINGS_MODULE="bench.poll_settings")
                    spec = {"tmp": str(tmp), "runs": 50 if args.quick else 200, "profile": args.profile}
                    setup = common.run_child("poll", "setup", spec, env)
                    with server(env, tmp) as (port, pid):
                        ours = CpuUse(pid, PG_NAME if name == "PostgreSQL" else None)
                        results[name] = {"setup": setup,
                                         "http": measure(client, port, ours, setup, seconds, rounds, tmp)}
                    others = results[name]["http"]["others"]
                    if others > 0.05:
                        common.note(f"{name}: other processes used {others:.0%} of the CPUs during the "
                                    "measurement: figures are noisy")
            except common.PostgresUnavailable as e:
                common.note(f"PostgreSQL skipped: not reachable ({e})")
            except RuntimeError as e:  # said why; the other database still runs
                common.note(f"{name} failed: {e}")
                failed.append(name)
    report(results, client)
    return 1 if failed else 0


# The child: the history, a session, the in-process timings ------------------------------------


def setup_child(spec):
    common.exit_cleanly_on_sigterm()
    common.setup_django()
    from django.conf import settings
    from django.test import Client

    from gallery import history

    team, user = common.migrate_and_owner()
    make_history(team, user)
    current = history.version(team, user, False).token
    one_row_older = current[:-8] + "00000000"  # the oldest listed row's digest from before its change
    client = Client(SERVER_NAME="127.0.0.1", headers={"HX-Request": "true"})  # an allowed host
    client.force_login(user, backend="gallery.auth.EmailOrUsernameBackend")
    paths = {"bare": "/bench/bare/", "changed": f"/history/?v={one_row_older}", "full": f"/history/?v={STALE}",
             "unchanged": f"/history/?v={current}"}
    in_process = time_in_process(client, paths, spec["runs"])
    if spec["profile"]:
        profile(client, paths, spec["runs"])
    common.answer(spec, {"session": client.cookies[settings.SESSION_COOKIE_NAME].value, "version": current,
                         "paths": paths, "in_process": in_process})


def make_history(team, user):
    """The 20 tasks, newest first: queued, running, running, failed, then 16 completed."""
    import hashlib
    from datetime import timedelta
    from decimal import Decimal

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from gallery.images.decode import make_thumbnail
    from gallery.models import GalleryImage, GenerationTask, Status

    data = common.encode(common.photo_image(1, 256), "jpeg")
    original = default_storage.save("bench/poll/original.jpg", ContentFile(data))
    thumbnail = default_storage.save("bench/poll/thumb.webp", ContentFile(make_thumbnail(data)))
    digest = hashlib.sha256(data).hexdigest()
    now = timezone.now()
    states = [Status.QUEUED, Status.RUNNING, Status.RUNNING, Status.FAILED] + [Status.COMPLETED] * (TASKS - 4)
    subjects = ["a lighthouse at dusk", "a red fox reading a newspaper", "a perfume bottle on wet slate",
                "a city at night in the rain", "an astronaut in a sunflower field", "a hand-drawn island map"]
    tasks = []
    for i, status in enumerate(states):
        created = now - timedelta(minutes=3 * i)
        prompt = f"{subjects[i % len(subjects)].capitalize()}, study {i}, 35 mm photo, soft light"
        if i % 5 == 2:  # some long prompts, which the row folds into a <details>
            prompt += ", " + ", ".join(["muted palette", "film grain", "shallow depth of field"] * 4)
        final = status in (Status.COMPLETED, Status.FAILED)
        cost = Decimal("0.0222") * IMAGES_PER_TASK
        tasks.append(GenerationTask(
            team=team, created_by=user, prompt=prompt, sent_prompt=prompt, provider="sandbox", status=status,
            n=IMAGES_PER_TASK, size="1:1", quality="2K",
            created_at=created, updated_at=created + timedelta(seconds=40),
            deadline_at=created + timedelta(minutes=15), storage_key=f"poll{i}",
            progress={Status.RUNNING: 40 * i, Status.COMPLETED: 100}.get(status, 0),
            finished_at=created + timedelta(seconds=40) if final else None,
            error_message="The provider refused this prompt." if status == Status.FAILED else "",
            price_per_image=Decimal("0.0222"), reserved_cost=cost,
            final_cost=(cost if status == Status.COMPLETED else Decimal(0)) if final else None,
        ))
    GenerationTask.objects.bulk_create(tasks)
    GalleryImage.objects.bulk_create(
        GalleryImage(team=team, task=task, index=index, file=original, thumbnail=thumbnail, width=256,
                     height=256, format="JPEG", bytes=len(data), sha256=digest, created_at=task.finished_at)
        for task in tasks if task.status == Status.COMPLETED
        for index in range(IMAGES_PER_TASK)
    )


def check_answers(get):
    """Each request answers as it should; `get(case)` → (status, body bytes). Returns the
    changed fragment's size."""
    for case in CASES:
        status, body = get(case)
        if status != EXPECTED[case]:
            raise RuntimeError(f"{case}: answered {status}, expected {EXPECTED[case]}")
    status, body = get("full")
    rows, thumbs = body.count(b'class="task-row"'), body.count(b"/thumb/")
    if (rows, thumbs) != (TASKS, (TASKS - 4) * IMAGES_PER_TASK):
        raise RuntimeError(f"the full fragment has {rows} rows and {thumbs} thumbnails")
    status, body = get("changed")
    if body.count(b'class="task-row"') != 1 or b'hx-swap-oob="true"' not in body:
        raise RuntimeError("the changed poll did not answer one row, out of band")
    return len(body)


def time_in_process(client, paths, runs):
    """Median ms of each request through the test client (the view and middleware, no HTTP).

    Unlike the server on SQLite (CONN_MAX_AGE 0: a new connection a request), the test client
    keeps its database connection between requests."""
    def get(case):
        response = client.get(paths[case])
        return response.status_code, response.content

    size = check_answers(get)
    timings = {case: [] for case in CASES}
    for _ in range(runs):
        for case in CASES:  # interleaved, so drift hits every case alike
            started = time.perf_counter()
            client.get(paths[case])
            timings[case].append(time.perf_counter() - started)
    medians = {case: statistics.median(values) * 1000 for case, values in timings.items()}
    return {"fragment_bytes": size, **medians}


def profile(client, paths, runs):
    import cProfile
    import io
    import pstats

    for case in ("changed", "full", "unchanged"):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            client.get(paths[case])
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(18)
        stats.sort_stats("cumulative").print_stats(25)
        common.heading(f"cProfile: {runs} × {LABELS[case]}, in-process (times are totals over the {runs})")
        print(_trim_pstats(out.getvalue()), flush=True)


def _trim_pstats(text):
    skip = ("Ordered by", "List reduced")
    lines = text.splitlines()
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith(skip))


# The server and the load -----------------------------------------------------------------------


@contextlib.contextmanager
def server(env, tmp):
    """granian with the Procfile's flags (2 workers, 8 blocking threads); yields (port, pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    granian = Path(sys.executable).with_name("granian")
    command = [str(granian), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2", "--blocking-threads", "8", "--no-ws", "seedream_site.wsgi:application"]
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the server did not start:\n{tail}")
                time.sleep(0.1)
            yield port, proc.pid
        finally:
            common.stop_process_group(proc)


def headers(session):
    return {"Cookie": f"sessionid={session}", "HX-Request": "true"}


def measure(client, port, cpu, setup, seconds, rounds, tmp):
    import httpx

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers=headers(setup["session"]), timeout=30) as http:
        def get(case):
            response = http.get(setup["paths"][case])
            return response.status_code, response.content

        fragment = check_answers(get)
        run = WRK(tmp) if client == "wrk" else run_httpx
        for case in CASES:  # warm-up: imports, templates, connections in every thread
            run(base, setup["paths"][case], setup["session"], 1)
        per_round = seconds / rounds
        runs = {case: [] for case in CASES}
        cpu.start_now()
        for _ in range(rounds):
            for case in CASES:
                runs[case].append(run(base, setup["paths"][case], setup["session"], per_round))
        others = cpu.others()
        if get("unchanged")[0] != 204:  # nothing may change the history during the runs
            raise RuntimeError("the history's version changed during the run")
    out = {"fragment_bytes": fragment, "others": others}
    for case, parts in runs.items():
        requests = sum(p["requests"] for p in parts)
        errors = sum(p["errors"] for p in parts)
        out[case] = {
            "rate": requests / sum(p["seconds"] for p in parts),
            "p50": statistics.mean(p["p50"] for p in parts),
            "p95": max(p["p95"] for p in parts),
            "bytes": sum(p["bytes"] for p in parts) / max(requests, 1),
            "requests": requests,
            "errors": errors,
        }
        if errors:
            raise RuntimeError(f"{case}: {errors} of {requests} requests failed or answered an error status")
    return out


class CpuUse:
    """The share of the machine's CPU time that went to processes other than ours (the server, its
    PostgreSQL backends, the load generator and this script) between start_now() and others():
    a busy machine makes noisy figures."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid, pg_database=None):
        self.server_pid = server_pid
        self.marker = f" {pg_database} ".encode() if pg_database else None  # in a backend's title

    def start_now(self):
        self.start = self._sample()

    def _sample(self):
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields)
        mine = os.times()  # this script, and its waited-for children (wrk)
        ours = (mine.user + mine.system + mine.children_user + mine.children_system) * self.HZ
        busy = user + nice + system + irq + softirq + steal
        return time.monotonic(), busy, ours + self._tree(self.server_pid) + self._backends()

    def _tree(self, pid):
        """utime + stime (all threads) of pid and its descendants, in clock ticks."""
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return int(fields[11]) + int(fields[12]) + sum(self._tree(int(child)) for child in children)
        return 0

    def _backends(self):
        if not self.marker:
            return 0
        total = 0
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and self.marker in (proc / "cmdline").read_bytes():
                    total += self._tree(int(proc.name))
        return total

    def others(self):
        elapsed, busy, ours = (b - a for a, b in zip(self.start, self._sample()))
        return max(busy - ours, 0) / (elapsed * self.HZ * (os.cpu_count() or 1))


class WRK:
    """wrk with a Lua `done` hook that prints its figures (p95 included) as one JSON line."""

    SCRIPT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-JSON {\"requests\": %d, \"us\": %d, \"bytes\": %d, \"p50\": %d, \"p95\": %d, \"errors\": %d}\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(95),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""

    def __init__(self, tmp):
        self.script = Path(tmp) / "poll.lua"
        self.script.write_text(self.SCRIPT)

    def __call__(self, base, path, session, seconds):
        command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
                   "-s", str(self.script)]
        for name, value in headers(session).items():
            command += ["-H", f"{name}: {value}"]
        done = subprocess.run(command + [base + path], capture_output=True, text=True, timeout=seconds + 60)
        found = re.search(r"^WRK-JSON (.*)$", done.stdout, re.M)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
        r = json.loads(found.group(1))
        return {"requests": r["requests"], "seconds": r["us"] / 1e6, "bytes": r["bytes"],
                "p50": r["p50"] / 1000, "p95": r["p95"] / 1000, "errors": r["errors"]}


def run_httpx(base, path, session, seconds):
    """The fallback load: CONNECTIONS threads, each with its own keep-alive connection."""
    import httpx

    latencies, counts = [], {"bytes": 0, "errors": 0}
    lock = threading.Lock()
    start = threading.Barrier(CONNECTIONS + 1)
    clients = [httpx.Client(base_url=base, headers=headers(session), timeout=10) for _ in range(CONNECTIONS)]
    deadline = [0.0]

    def work(http):
        mine, size, errors = [], 0, 0
        start.wait()
        while (began := time.perf_counter()) < deadline[0]:
            try:
                response = http.get(path)
                # Like wrk's byte count: the status line, the headers and the body.
                size += 17 + sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + len(response.content)
                errors += response.status_code >= 400
            except httpx.HTTPError:
                errors += 1
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)
            counts["bytes"] += size
            counts["errors"] += errors

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for http in clients:
        http.close()
    latencies.sort()
    return {"requests": len(latencies), "seconds": elapsed, "bytes": counts["bytes"],
            "p50": latencies[len(latencies) // 2] * 1000, "p95": latencies[int(len(latencies) * 0.95)] * 1000,
            "errors": counts["errors"]}


# The report -------------------------------------------------------------------------------------


def report(results, client):
    if not results:
        return
    rows = []
    for name, r in results.items():
        for case in CASES:
            rows.append([name, LABELS[case], f"{r['setup']['in_process'][case]:.2f}"])
    common.note(f"In-process (test client, no HTTP), median ms; the fragment is "
                f"{next(iter(results.values()))['setup']['in_process']['fragment_bytes'] / 1024:.0f} KB:")
    common.table(["database", "request", "median ms"], rows)
    print()
    rows = []
    for name, r in results.items():
        h = r["http"]
        for case in CASES:
            c = h[case]
            rows.append([name, LABELS[case], f"{c['rate']:.0f}", f"{c['p50']:.1f}", f"{c['p95']:.1f}",
                         f"{c['bytes'] / 1024:.1f}", f"{c['requests']:,}"])
    others = ", ".join(f"{name} {r['http']['others']:.0%}" for name, r in results.items())
    common.note(f"Through granian with {client}, {CONNECTIONS} connections (CPU time taken by other "
                f"processes meanwhile: {others}):")
    common.table(["database", "request", "req/s", "p50 ms", "p95 ms", "KB/response", "requests"], rows)
    print()
    for name, r in results.items():
        h = r["http"]
        bare = h["bare"]["rate"]
        for case, goal in (("changed", CHANGED_GOAL), ("unchanged", UNCHANGED_GOAL)):
            common.figure(f"history poll {name}, {case} ({EXPECTED[case]}), requests/s", h[case]["rate"],
                          bare, goal=round(1 / goal, 2), unit="req/s", digits=0, higher_is_better=True)
            fraction = h[case]["rate"] / bare
            common.note(f"= {fraction:.2f} of the bare view's requests/s (goal ≥ {goal:g})"
                        f"{'' if fraction >= goal else '  MISSES GOAL'}; p95 {h[case]['p95']:.1f} ms vs "
                        f"{h['bare']['p95']:.1f} ms ({h[case]['p95'] / h['bare']['p95']:.2f}×, no goal)")


if __name__ == "__main__":
    sys.exit(main())
