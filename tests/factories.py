"""Small make_* helpers with defaults, for tests that need tasks and images."""

import io

from PIL import Image

from gallery import images, pipeline
from gallery.forms import CheckedReference


def png_bytes(width=64, height=48, colour="orange"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def make_reference(width=64, height=48, colour="orange", name="ref.png"):
    data = png_bytes(width, height, colour)
    return CheckedReference(name=name, data=data, info=images.inspect_image(data))


def make_task(team, user, prompt="A lighthouse at dusk", n=1, references=(), **inputs):
    cleaned = {
        "prompt": prompt,
        "ask_for_n": True,
        "size": "1:1",
        "quality": "1K",
        "custom_size": None,
        "n": n,
        "priority": "standard",
        "references": list(references),
        **inputs,
    }
    return pipeline.submit(team, user, cleaned)


def run_until_final(task, max_steps=50):
    """Drives the task with direct calls to the pipeline, as a worker would."""
    for _ in range(max_steps):
        task.refresh_from_db()
        if task.is_final:
            return task
        pipeline.advance(task.pk)
    task.refresh_from_db()
    return task
