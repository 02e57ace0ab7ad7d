"""shrink.py on real photos: JPEG (DCT draft), HEIC, PNG, WebP; EXIF kept; bad files refused."""

from __future__ import annotations

import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from fieldsync.errors import ImageError
from fieldsync.media.exif import photo_facts
from fieldsync.media.shrink import ShrinkSettings, shrink, target_size
from tests.fixtures.syncing import MARK, camera_photo

SETTINGS = ShrinkSettings(max_edge=1600, jpeg_quality=85)


def _corner(path):
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((5, 5))


def _close(color, expected, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected))


def test_target_size_keeps_aspect_and_leaves_small_photos():
    assert target_size((4000, 3000), 1600) == (1600, 1200)
    assert target_size((3000, 4000), 1600) == (1200, 1600)
    assert target_size((1600, 900), 1600) is None
    assert target_size((20000, 10), 1600) == (1600, 1)


def test_jpeg_orientation_applied_exif_kept(tmp_path):
    src = camera_photo(tmp_path / "IMG_1.jpg")  # stored 4000x3000, orientation 6
    before = photo_facts(src)
    dst = tmp_path / "small.jpg"
    result = shrink(src, dst, SETTINGS)
    assert result.changed and (result.width, result.height) == (1200, 1600)
    with Image.open(dst) as image:
        assert image.format == "JPEG" and image.size == (1200, 1600)
        exif = image.getexif()
        assert exif.get(0x0112) == 1  # the pixels are upright now; the tag says so
    assert _close(_corner(dst), MARK)  # the upright picture's red corner is top-left
    after = photo_facts(dst)
    for key in ("taken_at", "gps", "camera"):
        assert after[key] == before[key] and after[key]
    assert after["taken_at"] == "2026-11-25T09:30:15"


def test_jpeg_decoded_with_dct_scaling(tmp_path, monkeypatch):
    """draft() must ask for the target size itself (thumbnail() alone asks for twice that)."""
    src = camera_photo(tmp_path / "IMG_2.jpg", upright=(4000, 3000), orientation=1)
    seen = []
    original = JpegImageFile.draft

    def spy(self, mode, size):
        answer = original(self, mode, size)
        seen.append((size, self.size))
        return answer

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    shrink(src, tmp_path / "out.jpg", SETTINGS)
    assert seen and seen[0][0] == (1600, 1200)
    assert seen[0][1] == (2000, 1500)  # libjpeg decoded at 1/2 scale, not the full 12 MP


def test_small_photo_not_reencoded(tmp_path):
    src = camera_photo(tmp_path / "IMG_3.jpg", upright=(1200, 900), orientation=1)
    dst = tmp_path / "out.jpg"
    result = shrink(src, dst, SETTINGS)
    assert not result.changed and not dst.exists()
    assert (result.width, result.height) == (1200, 900)


def test_shrunk_photo_is_stable_when_offered_again(tmp_path):
    src = camera_photo(tmp_path / "IMG_4.jpg")
    once = tmp_path / "once.jpg"
    shrink(src, once, SETTINGS)
    assert not shrink(once, tmp_path / "twice.jpg", SETTINGS).changed


@pytest.mark.parametrize("fmt,suffix", [("HEIF", ".heic"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_other_formats_keep_their_format(tmp_path, fmt, suffix):
    src = camera_photo(tmp_path / f"IMG{suffix}", upright=(2400, 3200), fmt=fmt)
    dst = tmp_path / f"out{suffix}"
    result = shrink(src, dst, SETTINGS)
    assert result.changed and (result.width, result.height) == (1200, 1600)
    facts = photo_facts(dst)
    assert facts["format"] == fmt and (facts["width"], facts["height"]) == (1200, 1600)
    assert _close(_corner(dst), MARK)
    if fmt in ("HEIF", "WEBP", "PNG"):
        assert facts["taken_at"] == "2026-11-25T09:30:15"
        assert facts["gps"] and abs(facts["gps"]["lat"] - 30.2741) < 1e-4


def test_truncated_and_corrupt_photos_refused(tmp_path):
    good = camera_photo(tmp_path / "good.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(ImageError, match="corrupt or truncated"):
            shrink(bad, tmp_path / "out.jpg", SETTINGS)


def test_truncated_small_photo_refused_too(tmp_path):
    good = camera_photo(tmp_path / "small.jpg", upright=(800, 600), orientation=1)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:-4000])
    with pytest.raises(ImageError):
        shrink(truncated, tmp_path / "out.jpg", SETTINGS)


def test_bomb_sized_image_refused_before_decoding(tmp_path):
    src = tmp_path / "bomb.png"
    Image.new("L", (3000, 3000)).save(src)  # 9 MP: over the limit given below
    with pytest.raises(ImageError, match="max_pixels"):
        shrink(src, tmp_path / "out.png", ShrinkSettings(1600, 85, max_pixels=4_000_000))
