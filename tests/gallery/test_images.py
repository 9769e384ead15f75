"""gallery.images: inspection, upstream copies, thumbnails, capped reads and sandbox renders."""

import hashlib
import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin
from PIL.PngImagePlugin import PngInfo

from gallery import options
from gallery.images import decode as decoding_module
from gallery.images.decode import (
    MAX_PIXELS,
    ImageInfo,
    InvalidImage,
    TooLarge,
    check_with_thumbnail,
    inspect_image,
    make_thumbnail,
    prepare_for_upstream,
    read_capped,
)
from gallery.images.sandbox import render_sandbox_image


def encode(im, image_format, **params):
    out = io.BytesIO()
    im.save(out, image_format, **params)
    return out.getvalue()


def halves(size=(40, 20), left="red", right="blue", mode="RGB"):
    """An image whose left half and right half differ, to see which way it ends up."""
    im = Image.new(mode, size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def noise(size=(64, 48), mode="RGB"):
    return Image.frombytes(mode, size, hashlib.shake_256(b"noise").digest(size[0] * size[1] * len(mode)))


def png_claiming(width, height):
    """A tiny PNG whose header claims width × height: what a decompression bomb looks like."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# inspect_image


def test_it_reports_the_format_size_byte_count_and_hash_of_an_image():
    data = encode(noise((30, 20)), "PNG")
    info = inspect_image(data)
    assert info == ImageInfo("PNG", 30, 20, len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_it_decides_the_format_from_the_content(image_format):
    assert inspect_image(encode(noise(), image_format)).format == image_format


def test_it_reports_a_multi_picture_jpeg_from_a_phone_as_jpeg():
    data = encode(noise(), "MPO", save_all=True, append_images=[noise()])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert inspect_image(data).format == "JPEG"


NOT_IMAGES = [b"", b"hello, world", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"%!PS-Adobe-3.0 EPSF-3.0\n"]


@pytest.mark.parametrize("data", NOT_IMAGES)
def test_it_rejects_bytes_that_are_not_an_image(data):
    with pytest.raises(InvalidImage, match="not an image we can read"):
        inspect_image(data)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_it_rejects_a_truncated_image(image_format):
    data = encode(noise((200, 200)), image_format)
    with pytest.raises(InvalidImage, match="not an image we can read"):
        inspect_image(data[: len(data) * 2 // 3])


def test_it_rejects_a_png_with_a_corrupted_chunk():
    data = bytearray(encode(noise(), "PNG"))
    data[60] ^= 0xFF
    with pytest.raises(InvalidImage):
        inspect_image(bytes(data))


def test_it_rejects_a_decompression_bomb():
    with pytest.raises(InvalidImage, match="too large to decode safely"):
        inspect_image(png_claiming(50_000, 50_000))


def test_it_rejects_an_image_over_its_own_pixel_limit_from_the_header():
    assert 7000 * 7000 < Image.MAX_IMAGE_PIXELS  # Pillow would let this one through
    with pytest.raises(InvalidImage, match="too large to decode safely"):
        inspect_image(png_claiming(7000, 7000))


def test_it_treats_pillows_decompression_bomb_warning_as_an_error(monkeypatch):
    monkeypatch.setattr(decoding_module, "MAX_PIXELS", 10**12)
    with pytest.raises(InvalidImage, match="too large to decode safely"):
        inspect_image(png_claiming(10_000, 10_000))  # between Pillow's warning and its error


def test_the_pixel_limit_admits_the_largest_reference_and_output():
    assert MAX_PIXELS >= options.MAX_REFERENCE_SIDE**2
    outputs = [w * h for sizes in options.PIXEL_SIZES.values() for w, h in sizes.values()]
    assert MAX_PIXELS >= max(outputs)
    side = options.MAX_REFERENCE_SIDE
    info = inspect_image(encode(Image.new("1", (side, side)), "PNG"))
    assert (info.width, info.height) == (side, side)


# prepare_for_upstream


def test_it_converts_a_webp_to_a_png_with_identical_pixels_and_alpha():
    webp = encode(noise(mode="RGBA"), "WEBP", lossless=True)
    data, image_format = prepare_for_upstream(webp)
    assert image_format == "PNG"
    result = decode(data)
    assert result.format == "PNG" and result.mode == "RGBA"
    assert result.tobytes() == decode(webp).tobytes()


def test_it_removes_gps_exif_xmp_and_comments_from_a_jpeg():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">SecretXMP</x:xmpmeta>'
    data = encode(noise((160, 120)), "JPEG", quality=90, exif=exif, xmp=xmp, comment=b"SecretComment")
    assert decode(data).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    result, image_format = prepare_for_upstream(data)

    assert image_format == "JPEG"
    for secret in (b"SecretCam", b"SecretXMP", b"SecretComment", b"Exif\0\0"):
        assert secret not in result
    clean = decode(result)
    assert not clean.getexif() and "xmp" not in clean.info and "comment" not in clean.info


def test_it_keeps_a_jpegs_quantization_and_pixels_when_nothing_needs_turning():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Cam"
    photo_like = noise((16, 12)).resize((160, 120), Image.Resampling.BICUBIC)
    data = encode(photo_like, "JPEG", quality=70, exif=exif)
    result, _ = prepare_for_upstream(data)
    before, after = decode(data), decode(result)
    assert after.size == before.size
    assert after.quantization == before.quantization
    assert len(result) < len(data) * 1.1
    # Re-encoding with the same tables still rounds a little (colour conversion, chroma).
    difference = sum(abs(a - b) for a, b in zip(before.tobytes(), after.tobytes())) / len(before.tobytes())
    assert difference < 3


def test_it_keeps_the_icc_colour_profile():
    for image_format in ("JPEG", "PNG", "WEBP"):
        result, _ = prepare_for_upstream(encode(noise(), image_format, icc_profile=SRGB))
        assert decode(result).info.get("icc_profile") == SRGB


def test_it_turns_a_jpeg_upright_by_its_exif_orientation():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90° clockwise
    data = encode(halves((80, 40)), "JPEG", quality=95, exif=exif)

    result, image_format = prepare_for_upstream(data)

    upright = decode(result)
    assert image_format == "JPEG" and upright.size == (40, 80)
    assert ExifTags.Base.Orientation not in upright.getexif()
    red, _, blue = upright.getpixel((20, 10))
    assert red > 200 and blue < 60  # the left half is now on top
    red, _, blue = upright.getpixel((20, 70))
    assert red < 60 and blue > 200


def test_it_removes_text_chunks_and_exif_from_a_png_keeping_pixels_and_transparency():
    original = halves(mode="RGBA", left=(255, 0, 0, 0), right=(0, 0, 255, 128))
    text = PngInfo()
    text.add_text("Comment", "SecretText")
    text.add_itxt("XML:com.adobe.xmp", "SecretXMP")
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    data = encode(original, "PNG", pnginfo=text, exif=exif)

    result, image_format = prepare_for_upstream(data)

    assert image_format == "PNG"
    for secret in (b"SecretText", b"SecretXMP", b"SecretCam"):
        assert secret not in result
    clean = decode(result)
    assert clean.text == {} and not clean.getexif()
    assert clean.tobytes() == original.tobytes()


def test_it_keeps_a_palette_pngs_transparency():
    original = halves(mode="RGBA", left=(255, 0, 0, 0), right=(0, 0, 255, 255)).quantize(4)
    original.info["transparency"] = 0
    data = encode(original, "PNG", transparency=original.getpixel((0, 0)))
    result = decode(prepare_for_upstream(data)[0])
    assert result.convert("RGBA").tobytes() == decode(data).convert("RGBA").tobytes()


def test_it_rejects_something_that_is_not_an_image_when_preparing():
    with pytest.raises(InvalidImage):
        prepare_for_upstream(b"GIF89a but not really")


# make_thumbnail


def test_a_thumbnail_is_a_webp_whose_longest_side_fits_keeping_the_aspect():
    thumb = decode(make_thumbnail(encode(noise((2000, 1000)), "PNG")))
    assert thumb.format == "WEBP" and thumb.size == (512, 256)
    assert decode(make_thumbnail(encode(noise((300, 900)), "JPEG"), max_side=300)).size == (100, 300)


def test_a_thumbnail_never_enlarges_a_small_image():
    assert decode(make_thumbnail(encode(noise((100, 50)), "PNG"))).size == (100, 50)


def test_a_thumbnail_accepts_a_file_on_disk(tmp_path):
    path = tmp_path / "original.jpg"
    path.write_bytes(encode(noise((1024, 768)), "JPEG"))
    with path.open("rb") as file:
        assert decode(make_thumbnail(file, max_side=256)).size == (256, 192)


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_a_thumbnail_keeps_transparency(image_format):
    original = halves((800, 400), mode="RGBA", left=(255, 0, 0, 0), right=(0, 0, 255, 255))
    thumb = decode(make_thumbnail(encode(original, image_format, lossless=True)))
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((10, 128))[3] < 10 and thumb.getpixel((500, 128))[3] > 245


def test_a_thumbnail_keeps_a_palette_images_transparency():
    original = halves((800, 400), mode="RGBA", left=(255, 0, 0, 0), right=(0, 0, 255, 255)).quantize(4)
    data = encode(original, "GIF", transparency=original.getpixel((0, 0)))
    thumb = decode(make_thumbnail(data))
    assert thumb.mode == "RGBA" and thumb.getpixel((10, 128))[3] < 10


def test_a_thumbnail_converts_cmyk_and_16_bit_images_sensibly():
    cmyk = decode(make_thumbnail(encode(Image.new("CMYK", (600, 300), (0, 255, 255, 0)), "JPEG")))
    red, green, blue = cmyk.getpixel((10, 10))
    assert cmyk.mode == "RGB" and red > 200 and green < 60 and blue < 60

    sixteen = Image.new("I;16", (600, 300), 32768)  # half of 65535: a middle grey, not white
    grey = decode(make_thumbnail(encode(sixteen, "PNG"))).getpixel((10, 10))
    assert all(110 < channel < 150 for channel in grey)


def test_a_thumbnail_is_upright():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    thumb = decode(make_thumbnail(encode(halves((1000, 500)), "JPEG", exif=exif), max_side=100))
    assert thumb.size == (50, 100)
    assert thumb.getpixel((25, 10))[0] > 200 and thumb.getpixel((25, 90))[2] > 200


def test_a_thumbnail_of_a_big_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    decoded_sizes = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):
        result = draft(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    make_thumbnail(encode(noise((4096, 2048)), "JPEG"))
    assert decoded_sizes and max(decoded_sizes[-1]) <= 2048


def test_a_thumbnail_refuses_a_decompression_bomb():
    with pytest.raises(InvalidImage, match="too large"):
        make_thumbnail(png_claiming(50_000, 50_000))


def test_read_capped_returns_a_rewound_file_its_size_and_its_hash():
    file, size, sha256 = read_capped([b"abc", b"", b"defg"], max_bytes=7)
    with file:
        assert (file.read(), size, sha256) == (b"abcdefg", 7, hashlib.sha256(b"abcdefg").hexdigest())


def test_read_capped_stops_reading_as_soon_as_the_stream_passes_the_limit():
    handed_out = []

    def endless():
        while True:
            handed_out.append(1)
            yield b"x" * 1000

    with pytest.raises(TooLarge, match="larger than the limit of 1 MB"):
        read_capped(endless(), max_bytes=1024 * 1024)
    assert len(handed_out) == 1049


def test_read_capped_keeps_a_large_file_whole():
    chunk = bytes(range(256)) * 4096  # 1 MiB
    file, size, sha256 = read_capped([chunk] * 9, max_bytes=64 * 1024 * 1024)
    with file:
        assert size == 9 * len(chunk) and file.read() == chunk * 9
    assert sha256 == hashlib.sha256(chunk * 9).hexdigest()


# render_sandbox_image


REFERENCES = [encode(Image.new("RGB", (300, 200), (255, 0, 0)), "JPEG"), encode(noise(mode="RGBA"), "PNG")]


@pytest.mark.parametrize("size", [(1024, 1024), (1568, 672), (736, 1312), (1281, 721)])
def test_a_sandbox_image_is_a_png_of_exactly_the_asked_size(size):
    im = decode(render_sandbox_image("a red fox in the snow", *size, REFERENCES, 0, 1))
    assert im.format == "PNG" and im.size == size


def test_a_sandbox_image_is_the_same_for_the_same_inputs():
    first = render_sandbox_image("a red fox in the snow", 1024, 1024, REFERENCES, 1, 2)
    assert render_sandbox_image("a red fox in the snow", 1024, 1024, REFERENCES, 1, 2) == first


def test_a_sandbox_image_differs_with_the_index_or_the_prompt():
    first = render_sandbox_image("a red fox in the snow", 1024, 1024, [], 0, 2)
    assert render_sandbox_image("a red fox in the snow", 1024, 1024, [], 1, 2) != first
    assert render_sandbox_image("a grey wolf in the snow", 1024, 1024, [], 0, 2) != first


def test_a_sandbox_image_shows_its_references_along_the_bottom():
    im = decode(render_sandbox_image("a fox", 1024, 1024, REFERENCES[:1], 0, 1))
    bottom = im.crop((0, 1024 * 3 // 4, 1024, 1024))
    pixels = zip(*[iter(bottom.tobytes())] * 3)
    reds = sum(1 for r, g, b in pixels if r > 240 and g < 15 and b < 15)
    assert reds > 100 * 100


def test_a_sandbox_image_copes_with_a_long_unicode_prompt_and_a_broken_reference():
    prompt = ("café naïve 東京 https://example.com/" + "a" * 150 + " ") * 10
    prompt = prompt[: options.MAX_PROMPT_CHARS]
    im = decode(render_sandbox_image(prompt, 1024, 1024, [b"not an image", *REFERENCES] * 3, 4, 15))
    assert im.size == (1024, 1024)


def _photo(fmt):
    im = Image.effect_noise((400, 300), 60).convert("RGB")
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("damage", ["whole", "cut-50", "cut-90", "cut-99.9", "zeroed-middle"])
def test_the_single_decode_check_refuses_what_the_full_check_refuses(fmt, damage):
    data = _photo(fmt)
    if damage.startswith("cut"):
        data = data[: int(len(data) * float(damage[4:]) / 100)]
    elif damage == "zeroed-middle":
        middle = len(data) // 2
        data = data[:middle] + b"\0" * 2048 + data[middle + 2048 :]
    try:
        expected = inspect_image(data)
    except InvalidImage:
        expected = None
    with io.BytesIO(data) as fp:
        try:
            info, thumbnail = check_with_thumbnail(fp, len(data), hashlib.sha256(data).hexdigest())
        except InvalidImage:
            info = None
    assert info == expected
