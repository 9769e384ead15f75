"""The sandbox provider's pictures: what was asked for, drawn with Pillow so nobody mistakes it
for a real one."""

import colorsys
import hashlib
import io
import math
import random
import textwrap
import unicodedata

from PIL import Image, ImageDraw, ImageFont

from .decode import InvalidImage, decoding, open_lazily, shrink


def render_sandbox_image(
    prompt: str, width: int, height: int, references: list[bytes], index: int, n: int,
    model: str = "", transparent: bool = False,
) -> bytes:
    """PNG bytes of exactly width × height showing the prompt, the model, the references and a
    SANDBOX mark (on a transparent backdrop when asked); the same inputs always give the same bytes."""
    rng = random.Random(hashlib.sha256(f"{index}\0{model}\0{prompt}".encode()).digest())
    canvas = _gradient(rng, width, height)
    if transparent:
        # The picture as a rounded card on a transparent canvas: what a "transparent background" asks.
        card = Image.new("L", (width, height), 0)
        inset = min(width, height) // 10
        ImageDraw.Draw(card).rounded_rectangle((inset, inset, width - inset, height - inset), radius=inset, fill=255)
        canvas.putalpha(card)
    draw = ImageDraw.Draw(canvas)
    unit = min(width, height)
    margin = unit // 24 + (unit // 10 if transparent else 0)

    _watermark(canvas, "SANDBOX")

    caption_font = ImageFont.load_default(size=max(12, unit // 32))
    caption = f"{model} · " if model else ""
    draw.text((margin, margin), f"{caption}image {index + 1} of {n} · {width} x {height}", font=caption_font,
              fill="white", stroke_width=max(1, unit // 400), stroke_fill="black")
    _badge(draw, "SANDBOX", caption_font, right=width - margin, top=margin, padding=unit // 80)

    strip = height // 6 if references else 0
    top = margin * 2 + caption_font.size
    bottom = height - margin - (strip + margin if strip else 0)
    _prompt_text(draw, prompt, left=margin, top=top, right=width - margin, bottom=bottom, unit=unit)

    if references:
        _reference_strip(canvas, references, margin=margin, side=strip, bottom=height - margin)

    out = io.BytesIO()
    # Level 1 keeps a 4096 × 4096 encode well under a second; these files are throwaway.
    canvas.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _gradient(rng, width, height):
    """A soft colour field: a 3 × 3 grid of related colours smoothly enlarged to full size."""
    hue = rng.random()
    spread = rng.uniform(0.12, 0.35)
    grid = Image.new("RGB", (3, 3))
    for y in range(3):
        for x in range(3):
            h = (hue + spread * (x + y) / 4 + rng.uniform(-0.03, 0.03)) % 1
            r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.45, 0.7), rng.uniform(0.55, 0.8))
            grid.putpixel((x, y), (round(r * 255), round(g * 255), round(b * 255)))
    return grid.resize((width, height), Image.Resampling.BICUBIC)


def _watermark(canvas, text):
    """Large translucent text along the diagonal."""
    width, height = canvas.size
    diagonal = math.hypot(width, height)
    font = ImageFont.load_default(size=max(12, int(diagonal / 9)))
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=80)
    angle = math.degrees(math.atan2(height, width))
    mask = mask.rotate(angle, expand=True, resample=Image.Resampling.BILINEAR)
    canvas.paste("white", ((width - mask.width) // 2, (height - mask.height) // 2), mask)


def _badge(draw, text, font, right, top, padding):
    left, _, text_right, bottom = draw.textbbox((0, 0), text, font=font)
    x = right - (text_right - left) - 2 * padding
    draw.rounded_rectangle((x, top, right, top + bottom + 2 * padding), radius=padding, fill=(200, 30, 45))
    draw.text((x + padding - left, top + padding), text, font=font, fill="white")


def _prompt_text(draw, prompt, left, top, right, bottom, unit):
    """The prompt's words, centred, in the largest size that fits (truncated at the smallest)."""
    # Pillow's built-in font has ASCII only: "café" is shown as "cafe" rather than "caf□".
    words = "".join(c for c in unicodedata.normalize("NFKD", prompt) if not unicodedata.combining(c)).split()
    size = max(12, unit // 12)
    while True:
        font = ImageFont.load_default(size=size)
        line_height = round(size * 1.25)
        lines = _wrap(words, font, right - left)
        fits = max(1, (bottom - top) // line_height)
        if len(lines) <= fits or size <= max(12, unit // 48):
            break
        size = int(size * 0.85)
    if len(lines) > fits:
        lines = lines[: fits - 1] + [lines[fits - 1] + " …"]
    y = top + ((bottom - top) - len(lines) * line_height) // 2
    for line in lines:
        x = left + ((right - left) - font.getlength(line)) / 2
        draw.text((x, y), line, font=font, fill="white", stroke_width=max(1, size // 16),
                  stroke_fill=(20, 20, 30))
        y += line_height


def _wrap(words, font, max_width):
    lines, line = [], ""
    for word in words:
        if font.getlength(word) > max_width:
            # A word wider than the line (a URL, say) is cut into pieces that fit.
            pieces = textwrap.wrap(word, max(1, int(max_width // font.getlength("W"))))
        else:
            pieces = [word]
        for piece in pieces:
            candidate = f"{line} {piece}" if line else piece
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = piece
            else:
                line = candidate
    return lines + [line] if line else lines


def _reference_strip(canvas, references, margin, side, bottom):
    """The references as framed thumbnails in a row, left to right in their order."""
    count = len(references)
    side = min(side, (canvas.width - margin * (count + 1)) // count)
    border = max(1, side // 40)
    draw = ImageDraw.Draw(canvas)
    x = margin
    for data in references:
        box = (x, bottom - side, x + side, bottom)
        draw.rectangle(box, fill=(250, 250, 250))
        try:
            with decoding(), open_lazily(data) as im:
                thumb = shrink(im, side - 2 * border)
        except InvalidImage:
            draw.line(box, fill=(200, 30, 45), width=border * 2)
        else:
            position = (x + (side - thumb.width) // 2, bottom - side + (side - thumb.height) // 2)
            canvas.paste(thumb, position, thumb if thumb.mode == "RGBA" else None)
        x += side + margin
