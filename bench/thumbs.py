"""(b) Thumbnails: `gallery.images.make_thumbnail(data)` against Pillow's own floor.

Floor: Image.open + draft("RGB", (512, 512)) (JPEG only: libjpeg decodes at 1/8 scale) +
thumbnail((512, 512)) + save WebP quality 80 — the least work Pillow can do for a ≤ 512 px WebP.
Inputs: 4096 × 4096 photo-like JPEG (q95) and PNG, and the sandbox's 4K PNG. Best of N runs,
interleaved. Goal ≤ 1.2×.

A second floor, "same-scale", asks draft() for 1024 px as make_thumbnail does (thumbnail()'s
reducing_gap=2.0 decodes a JPEG at 1/4 scale and then resizes 2:1 with a real filter, which looks
better than 1/8 DCT scaling): the difference between the two floors is that choice, not overhead.
"""

import io
import sys
import time

from bench import common

GOAL = 1.2
SIDE = 512


def floor(data, draft_side=SIDE):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft("RGB", (draft_side, draft_side))
        im.thumbnail((SIDE, SIDE))
        out = io.BytesIO()
        im.save(out, "WEBP", quality=80)
    return out.getvalue()


def once(work, data):
    started = time.perf_counter()
    work(data)
    return time.perf_counter() - started


def main(argv=None):
    args = common.arguments(__doc__.splitlines()[0], argv)
    common.exit_cleanly_on_sigterm()
    sys.path.insert(0, str(common.ROOT))
    from PIL import Image

    from gallery.images.decode import make_thumbnail

    runs = 3 if args.quick else 9
    common.heading(f"thumbs: make_thumbnail vs Pillow's floor on 4096 × 4096 inputs (best of {runs})")
    photo = common.photo_image(1)
    inputs = [("photo JPEG", common.encode(photo, "jpeg"))]
    if not args.quick:
        inputs.append(("photo PNG", common.encode(photo, "png")))
    inputs.append(("sandbox PNG", common.sandbox_png(0, 1)))
    del photo

    measured = {}
    for label, data in inputs:
        # Same output size from both, and one untimed run each to load the plugins.
        sizes = {Image.open(io.BytesIO(out)).size for out in (make_thumbnail(data), floor(data))}
        if len(sizes) != 1:
            raise SystemExit(f"{label}: make_thumbnail and the floor disagree on the size: {sizes}")
        times = {"gallery": float("inf"), "floor": float("inf"), "same-scale": float("inf")}
        for _ in range(runs):  # interleaved: a noisy moment hits all three alike
            times["gallery"] = min(times["gallery"], once(make_thumbnail, data))
            times["floor"] = min(times["floor"], once(floor, data))
            times["same-scale"] = min(times["same-scale"], once(lambda d: floor(d, 2 * SIDE), data))
        measured[label] = (len(data), times)

    rows = []
    for label, (size, t) in measured.items():
        same = f"{1000 * t['same-scale']:.1f}" if label.endswith("JPEG") else "(same)"
        rows.append([label, f"{common.mb(size):.1f} MB", f"{1000 * t['gallery']:.1f}", f"{1000 * t['floor']:.1f}",
                     f"{t['gallery'] / t['floor']:.2f}×", same])
    common.table(["input", "bytes", "make_thumbnail ms", "floor ms", "ratio", "same-scale floor ms"], rows)
    print()
    for label, (_, t) in measured.items():
        common.figure(f"thumbs 4K {label}", 1000 * t["gallery"], 1000 * t["floor"], goal=GOAL, unit="ms", digits=1)
    for label, (_, t) in measured.items():
        if label.endswith("JPEG"):
            common.figure(f"thumbs 4K {label} vs same-scale floor (1024 px draft)", 1000 * t["gallery"],
                          1000 * t["same-scale"], goal=GOAL, unit="ms", digits=1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C: the clean-up has run; exit without a traceback
        sys.exit(130)
