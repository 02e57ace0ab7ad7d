"""Fuzzing (issue 15, point 9): hostile EXIF blocks, JPEG/PNG headers, CSV bytes, config YAML
and names, mutated by hypothesis from real files. No input may end in an exception that is not
fieldsync's own, nor stall or abort a sync pass.

Deterministic (derandomize, no example database) and bounded, so `./run tests` stays fast.
Inputs that once broke the invariant are kept as small files under tests/data/fuzz/ and
replayed through the real engine on every run, together with every other image in tests/data/.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import tempfile
import traceback
import zlib
from datetime import datetime
from io import BytesIO
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from fieldsync import config as config_mod
from fieldsync.base import names
from fieldsync.errors import ConfigError, FieldsyncError
from fieldsync.masterdata import importer
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.media import exif as exif_mod
from fieldsync.media import shrink as shrink_mod
from fieldsync.sync import engine
from fieldsync.tree import folders as tree_mod
from fieldsync.tree import visits
from tests.conftest import SAMPLE_CSV
from tests.fixtures.evidence import _dms

# Pillow warns about the damaged EXIF and chunks these tests make on purpose; what they check
# is that nothing raises, so the warnings are expected noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL", "ignore::DeprecationWarning:PIL")

DATA = Path(__file__).parent / "data"
FUZZ_DATA = DATA / "fuzz"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp"}

# Deterministic and bounded: the same examples on every machine, no .hypothesis folder, and no
# shrinking phase for the engine passes (one pass of 20 files costs about half a second).
# FIELDSYNC_FUZZ_SCALE=10 runs ten times as many (e.g. 1,500 EXIF mutations) when hunting.
SCALE = max(1, int(os.environ.get("FIELDSYNC_FUZZ_SCALE", "1")))
FAST = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DIRECT = settings(FAST, max_examples=150 * SCALE)
ENGINE = settings(FAST, max_examples=10 * SCALE, phases=[Phase.explicit, Phase.generate])
PER_PASS = 20  # mutated files per engine pass


# --------------------------------------------------------------------------- real base files

def _camera_image(size=(160, 120), orientation: int = 6) -> tuple[Image.Image, Image.Exif]:
    """Pixels and EXIF as tests/fixtures/syncing.camera_photo writes them, at a tiny size."""
    image = Image.new("RGB", size, (40, 90, 160))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 5, size[1] // 5), fill=(220, 20, 20))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "MatePad 11"
    exif[0x0112] = orientation
    exif[0x0132] = "2026:11:25 09:30:15"
    exif.get_ifd(0x8769)[0x9003] = datetime(2026, 11, 25, 9, 30, 15).strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", _dms(30.2741)
    gps[3], gps[4] = "E", _dms(120.1551)
    return image, exif


def _base_jpeg() -> bytes:
    image, exif = _camera_image()
    out = BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def _base_png() -> bytes:
    image, exif = _camera_image()
    out = BytesIO()
    image.save(out, "PNG", exif=exif.tobytes())
    return out.getvalue()


BASE_JPEG = _base_jpeg()
BASE_PNG = _base_png()


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(position, marker, length) of each marker segment from SOI up to and including SOS."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        segments.append((pos, marker, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return segments


def png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(position, type, length) of each chunk after the signature."""
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append((pos, data[pos + 4:pos + 8], length))
        pos += 12 + length
    return chunks


@dataclasses.dataclass(frozen=True)
class IfdEntry:
    at: int  # absolute position of the 12-byte entry in the JPEG
    tag: int
    type: int
    count: int
    value_at: int  # absolute position of the value (inline or at its offset)


def exif_layout(data: bytes) -> tuple[int, int, str, list[IfdEntry]]:
    """(APP1 position, TIFF header position, byte order, entries of IFD0, Exif IFD, GPS IFD)."""
    app1 = next(pos for pos, marker, _ in jpeg_segments(data)
                if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\0\0")
    tiff = app1 + 10
    order = "<" if data[tiff:tiff + 2] == b"II" else ">"
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}
    entries: list[IfdEntry] = []
    todo, seen = [struct.unpack(order + "I", data[tiff + 4:tiff + 8])[0]], set()
    while todo:
        ifd = todo.pop()
        if ifd in seen:
            continue
        seen.add(ifd)
        (count,) = struct.unpack(order + "H", data[tiff + ifd:tiff + ifd + 2])
        for i in range(count):
            at = tiff + ifd + 2 + 12 * i
            tag, kind, n, value = struct.unpack(order + "HHII", data[at:at + 12])
            inline = sizes.get(kind, 1) * n <= 4
            entries.append(IfdEntry(at, tag, kind, n, at + 8 if inline else tiff + value))
            if tag in (0x8769, 0x8825):
                todo.append(value)
    return app1, tiff, order, entries


APP1, TIFF, ORDER, ENTRIES = exif_layout(BASE_JPEG)
RATIONALS = [e for e in ENTRIES if e.type in (5, 10)]
ASCII = [e for e in ENTRIES if e.type == 2]
APP1_END = APP1 + 2 + int.from_bytes(BASE_JPEG[APP1 + 2:APP1 + 4], "big")
assert RATIONALS and ASCII, "the base photo must carry GPS rationals and EXIF strings"

U16 = st.sampled_from([0, 1, 2, 7, 0x7FFF, 0x8000, 0xFFFF])
U32 = st.one_of(st.sampled_from([0, 1, 2, 8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 30000]),
                st.integers(0, 0xFFFFFFFF))


def _put(data: bytearray, at: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    if 0 <= at and at + size <= len(data):
        data[at:at + size] = struct.pack(fmt, value)


@st.composite
def exif_mutation(draw) -> bytes:
    """BASE_JPEG with 1-4 in-place changes to its EXIF block (sizes stay, so offsets hold)."""
    data = bytearray(BASE_JPEG)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["byte", "tag", "type", "count", "value", "zero_den", "no_nul",
                                   "app1_length", "ifd_count"]))
        if op == "byte":
            data[draw(st.integers(APP1 + 4, APP1_END - 1))] = draw(st.integers(0, 255))
        elif op in ("tag", "type"):
            entry = draw(st.sampled_from(ENTRIES))
            value = draw(st.one_of(U16, st.integers(0, 20)))
            _put(data, entry.at + (0 if op == "tag" else 2), ORDER + "H", value)
        elif op in ("count", "value"):  # huge counts, offsets past the end or into the header
            entry = draw(st.sampled_from(ENTRIES))
            _put(data, entry.at + (4 if op == "count" else 8), ORDER + "I", draw(U32))
        elif op == "zero_den":
            entry = draw(st.sampled_from(RATIONALS))
            i = draw(st.integers(0, entry.count - 1))
            _put(data, entry.value_at + 8 * i + 4, ORDER + "I", 0)
            if draw(st.booleans()):
                _put(data, entry.value_at + 8 * i, ORDER + "I", 0)  # 0/0
        elif op == "no_nul":  # a string that runs into whatever follows it
            entry = draw(st.sampled_from(ASCII))
            end = entry.value_at + entry.count - 1
            if end < len(data):
                data[end] = ord("A")
        elif op == "app1_length":
            _put(data, APP1 + 2, ">H", draw(U16))
        else:  # the number of entries of IFD0
            _put(data, TIFF + 8, ORDER + "H", draw(U16))
    return bytes(data)


JPEG_SEGMENTS = jpeg_segments(BASE_JPEG)
JPEG_SOF = next(pos for pos, marker, _ in JPEG_SEGMENTS if marker in (0xC0, 0xC1, 0xC2))
JPEG_CUTS = sorted({p for pos, _, length in JPEG_SEGMENTS for p in (pos, pos + 2, pos + 4, pos + 2 + length)}
                   | {len(BASE_JPEG) - 2, len(BASE_JPEG) // 2})


@st.composite
def jpeg_header_mutation(draw) -> bytes:
    """BASE_JPEG with odd frame sizes, segment lengths or component counts, maybe truncated."""
    data = bytearray(BASE_JPEG)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["height", "width", "components", "precision", "length", "marker"]))
        if op in ("height", "width"):
            _put(data, JPEG_SOF + (5 if op == "height" else 7), ">H", draw(st.one_of(U16, st.integers(0, 0xFFFF))))
        elif op == "components":
            data[JPEG_SOF + 9] = draw(st.sampled_from([0, 1, 2, 4, 255]))
        elif op == "precision":
            data[JPEG_SOF + 4] = draw(st.sampled_from([0, 1, 8, 12, 16, 255]))
        elif op == "length":
            pos, _, _ = draw(st.sampled_from(JPEG_SEGMENTS))
            _put(data, pos + 2, ">H", draw(st.one_of(U16, st.integers(0, 0xFFFF))))
        else:  # one marker turned into another (SOF0 -> SOF15, DHT -> APP15, ...)
            pos, _, _ = draw(st.sampled_from(JPEG_SEGMENTS))
            data[pos + 1] = draw(st.integers(0xC0, 0xFE))
    if draw(st.booleans()):
        cut = draw(st.sampled_from(JPEG_CUTS)) + draw(st.integers(-3, 3))
        data = data[:max(0, cut)]
    return bytes(data)


PNG_CHUNKS = png_chunks(BASE_PNG)
PNG_CUTS = sorted({p for pos, _, length in PNG_CHUNKS for p in (pos, pos + 4, pos + 8, pos + 8 + length)}
                  | {0, 4, 8, len(BASE_PNG) - 12})


@st.composite
def png_header_mutation(draw) -> bytes:
    """BASE_PNG with odd IHDR fields, chunk lengths, CRCs and data bytes, maybe truncated."""
    data = bytearray(BASE_PNG)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["width", "height", "depth", "colour", "interlace", "length", "crc", "byte"]))
        if op in ("width", "height"):
            _put(data, 16 if op == "width" else 20, ">I", draw(st.sampled_from(
                [0, 1, 2, 159, 161, 320, 30000, 0x7FFFFFFF, 0xFFFFFFFF])))
        elif op == "depth":
            data[24] = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 255]))
        elif op == "colour":
            data[25] = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 7, 255]))
        elif op == "interlace":
            data[28] = draw(st.sampled_from([0, 1, 2, 255]))
        elif op == "length":
            pos, _, _ = draw(st.sampled_from(PNG_CHUNKS))
            _put(data, pos, ">I", draw(U32))
        elif op == "crc":
            pos, _, length = draw(st.sampled_from(PNG_CHUNKS))
            _put(data, pos + 8 + length, ">I", draw(st.integers(0, 0xFFFFFFFF)))
        else:
            data[draw(st.integers(8, len(data) - 1))] = draw(st.integers(0, 255))
    if op in ("width", "height", "depth", "colour", "interlace") and draw(st.booleans()):
        _put(data, 29, ">I", zlib.crc32(bytes(data[12:29])))  # a valid CRC: the header is read
    if draw(st.booleans()):
        cut = draw(st.sampled_from(PNG_CUTS)) + draw(st.integers(-3, 3))
        data = data[:max(0, cut)]
    return bytes(data)


def image_mutation() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.one_of(st.tuples(st.just(".jpg"), exif_mutation()),
                     st.tuples(st.just(".jpg"), jpeg_header_mutation()),
                     st.tuples(st.just(".png"), png_header_mutation()))


# --------------------------------------------------------------------------- the invariants

def _first_frames(exc: BaseException, frames: int = 4) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-frames:]
    return f"{type(exc).__name__}: {exc} at " + " <- ".join(
        f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(where))


def media_problems(suffix: str, data: bytes) -> list[str]:
    """photo_facts and shrink on `data`: they may raise FieldsyncError subclasses only."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        src = Path(tmp) / f"photo{suffix}"
        src.write_bytes(data)
        calls = (("photo_facts", lambda: exif_mod.photo_facts(src)),
                 ("shrink", lambda: shrink_mod.shrink(src, Path(tmp) / f"out{suffix}",
                                                      shrink_mod.ShrinkSettings(max_edge=64))))
        for name, call in calls:
            try:
                call()
            except FieldsyncError:
                pass
            except Exception as exc:  # noqa: BLE001 - the very thing under test
                problems.append(f"{name}: {_first_frames(exc)}")
    return problems


def fresh_visit(base: Path) -> tuple[config_mod.Config, Path]:
    """A tablet tree (as the `tree` fixture makes it) with a file:// server and one visit;
    photos.max_edge 64 so even tiny photos are re-encoded, no retry period before quarantine."""
    root, server = base / "tablet", base / "server"
    server.mkdir(parents=True)
    text = config_mod.render_default(root, "zhang.san", "tablet-07", server.as_uri())
    config_path = tree_mod.init_root(root, text)
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data.setdefault("photos", {})["max_edge"] = 64
    data.setdefault("sync", {})["incomplete_retry_seconds"] = 0
    data.setdefault("server", {})["parallel"] = 4
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    cfg = config_mod.load(config_path)
    csv_path = base / "customers.csv"
    csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
    IndexedStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_0930")
    return cfg, visit


def engine_problems(files: list[tuple[str, bytes]]) -> list[str]:
    """Put every (name, bytes) in one visit's 外观 folder beside a good control photo, run one
    real sync pass to a file:// server and return every broken promise: each file pushed or
    quarantined with a reason, never failed, waiting or aborting the pass; the control photo,
    the visit's manifest and the device's ledger on the server."""
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        cfg, visit = fresh_visit(Path(tmp))
        folder = visit / "外观"
        folder.mkdir(exist_ok=True)
        (folder / "control.jpg").write_bytes(BASE_JPEG)
        for name, data in files:
            (folder / name).write_bytes(data)
        try:
            result = engine.sync_once(cfg)
        except Exception as exc:  # noqa: BLE001 - the very thing under test
            return [f"the pass raised {_first_frames(exc, 6)}"]
        problems = [f"the pass stopped: {result.error}"] if result.error else []
        server = Path(tmp) / "server" / visit.relative_to(cfg.root)
        quarantined = {key.rsplit("/", 1)[-1]: reason for key, reason in result.quarantined}
        failed = dict((key.rsplit("/", 1)[-1], reason) for key, reason in result.failed)
        waiting = {key.rsplit("/", 1)[-1] for key in result.waiting}
        for name, _ in [("control.jpg", b"")] + files:
            if name in failed:
                problems.append(f"{name} failed: {failed[name]}")
            elif name in waiting:
                problems.append(f"{name} is still waiting with no retry period")
            elif name in quarantined:
                if name == "control.jpg" or not quarantined[name].strip():
                    problems.append(f"{name} quarantined, reason {quarantined[name]!r}")
            elif not (server / "外观" / name).is_file():
                problems.append(f"{name} neither pushed nor quarantined")
        if not (server / "manifest.json").is_file():
            problems.append("the visit's manifest.json never reached the server")
        elif "外观/control.jpg" not in (server / "manifest.json").read_text(encoding="utf-8"):
            problems.append("the server's manifest.json does not list the control photo")
        ledgers = Path(tmp) / "server" / ".fieldsync" / "ledgers"
        if not ledgers.is_dir() or not any(ledgers.rglob("*")):
            problems.append("no ledger reached the server")
        return problems


def _named(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(f"m{i:03d}{suffix}", data) for i, (suffix, data) in enumerate(files)]


# --------------------------------------------------------------------------- images

def test_the_base_photos_are_real_and_sync_cleanly():
    assert exif_mod.photo_facts(BytesIO(BASE_JPEG))["gps"] == {"lat": 30.2741, "lon": 120.1551}
    assert exif_mod.photo_facts(BytesIO(BASE_PNG))["camera"] == {"make": "HUAWEI", "model": "MatePad 11"}
    assert engine_problems([("base.jpg", BASE_JPEG), ("base.png", BASE_PNG)]) == []


@DIRECT
@given(exif_mutation())
def test_exif_mutations_raise_only_fieldsync_errors(data):
    assert media_problems(".jpg", data) == []


@DIRECT
@given(jpeg_header_mutation())
def test_jpeg_header_mutations_raise_only_fieldsync_errors(data):
    assert media_problems(".jpg", data) == []


@DIRECT
@given(png_header_mutation())
def test_png_header_mutations_raise_only_fieldsync_errors(data):
    assert media_problems(".png", data) == []


@ENGINE
@given(st.lists(st.tuples(st.just(".jpg"), exif_mutation()), min_size=PER_PASS, max_size=PER_PASS))
def test_photos_with_mutated_exif_end_pushed_or_quarantined_and_never_stall_a_pass(files):
    assert engine_problems(_named(files)) == []


@settings(ENGINE, max_examples=5 * SCALE)
@given(st.lists(image_mutation(), min_size=PER_PASS, max_size=PER_PASS))
def test_mutated_photos_end_pushed_or_quarantined_and_never_stall_a_pass(files):
    assert engine_problems(_named(files)) == []


def corpus() -> list[Path]:
    return sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def test_the_fuzz_corpus_holds_small_reproducers():
    kept = [p for p in FUZZ_DATA.iterdir() if p.is_file()] if FUZZ_DATA.is_dir() else []
    assert kept and all(p.stat().st_size <= 16_384 for p in kept)
    assert {p.suffix for p in kept} <= IMAGE_SUFFIXES | {".csv"}  # each one is replayed below


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.relative_to(DATA).as_posix())
def test_every_corpus_image_raises_only_fieldsync_errors(path):
    assert media_problems(path.suffix.lower(), path.read_bytes()) == []


def test_every_corpus_image_ends_pushed_or_quarantined_in_one_pass():
    """Every image under tests/data/ (the fuzz reproducers included) in one engine pass."""
    files = [(f"c{i:03d}_{p.name}", p.read_bytes()) for i, p in enumerate(corpus())]
    assert files
    assert engine_problems(files) == []


# --------------------------------------------------------------------------- CSV

HEADERS = [["户号", "户名", "表计局号", "合同容量", "用电地址", "线路名称", "供电电压等级"],
           ["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"],
           ["用户编号", "用户名称", "电能表资产编号", "合同容量", "用电地址", "所属线路", "电压等级"]]
CELL = st.one_of(
    st.sampled_from(["3300001234", "杭州某某机械有限公司", '"ACME ""Best"" Co"', "ACME, Ltd", "315", "630kVA",
                     "=cmd|' /C calc'!A0", "+SUM(A1)", "-1", "@x", "10kV", "", " ", "\x00", "a\nb",
                     "NaN", "1e309", "9" * 400, "\ufeff", "\u202e", "户号"]),
    st.text(max_size=20))


@st.composite
def csv_bytes(draw) -> bytes:
    """A master-data CSV: a real header and rows of odd cells, quoted or not, in an encoding."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", "，"]))
    quote = draw(st.sampled_from(['"', "'", ""]))
    header = draw(st.sampled_from(HEADERS))
    rows = [header] + draw(st.lists(st.lists(CELL, min_size=0, max_size=9), max_size=6))

    def cell(text: str) -> str:
        if quote and draw(st.booleans()):
            return quote + text.replace(quote, quote * draw(st.sampled_from([1, 2]))) + quote
        return text

    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(delimiter.join(cell(c) for c in row) for row in rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):  # raw damage: invalid UTF-8/GBK bytes, NULs, a cut multibyte char
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x81", b"\xc3", b"\x00", b"\xe6\x88",
                                                 b"\x81\x30", b"\xef\xbb\xbf"])) + data[at:]
    return data


def _parse_problem(data: bytes, suffix: str = ".csv") -> str | None:
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        path = Path(tmp) / f"customers{suffix}"
        path.write_bytes(data)
        try:
            records = importer.parse(path)
        except FieldsyncError:
            return None
        except Exception as exc:  # noqa: BLE001 - the very thing under test
            return _first_frames(exc)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return f"parse returned {type(records).__name__}"
        return None


@pytest.mark.parametrize("path", sorted(FUZZ_DATA.glob("*.csv")), ids=lambda p: p.name)
def test_every_csv_reproducer_gives_records_or_a_fieldsync_error(path):
    assert _parse_problem(path.read_bytes()) is None


@DIRECT
@given(csv_bytes())
def test_csv_bytes_give_records_or_a_fieldsync_error(data):
    assert _parse_problem(data) is None


@settings(FAST, max_examples=60)
@given(st.binary(max_size=300), st.sampled_from([".csv", ".xlsx"]))
def test_random_bytes_as_master_data_give_a_fieldsync_error(data, suffix):
    assert _parse_problem(data, suffix) is None


# --------------------------------------------------------------------------- config YAML

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.sampled_from([10**30, -1, 0, 1.5, float("nan"), float("inf")]),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["../../etc", "/", "~", ".", "..", "a/b", "C:\\x", "\x00", "-"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
SECTIONS = {"layout": config_mod.Layout, "photos": config_mod.Photos, "camera": config_mod.Camera,
            "server": config_mod.Server, "sync": config_mod.Sync, "maps": config_mod.Maps,
            "locate": config_mod.Locate}


@st.composite
def config_mapping(draw, root: str) -> dict:
    """config.yaml's keys with wrong types, huge numbers, unknown keys and path-like strings."""
    data = {"root": draw(st.one_of(st.just(root), SCALARS))}
    for key in ("inspector", "device"):
        if draw(st.booleans()):
            data[key] = draw(VALUES)
    for section, cls in SECTIONS.items():
        if draw(st.booleans()):
            keys = [f.name for f in dataclasses.fields(cls)]
            data[section] = draw(st.one_of(
                st.dictionaries(st.sampled_from(keys + ["unknown"]), VALUES, max_size=4), SCALARS))
    if draw(st.booleans()):
        data[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    return data


def _config_problem(call) -> str | None:
    try:
        cfg = call()
    except ConfigError:
        return None
    except Exception as exc:  # noqa: BLE001 - the very thing under test
        return _first_frames(exc)
    return None if isinstance(cfg, config_mod.Config) else f"returned {type(cfg).__name__}"


@DIRECT
@given(st.data())
def test_config_mappings_give_a_config_or_a_config_error(data):
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        mapping = data.draw(config_mapping(str(Path(tmp) / "tablet")))
        assert _config_problem(lambda: config_mod.from_mapping(mapping, Path(tmp) / "config.yaml")) is None


@settings(FAST, max_examples=100)
@given(st.sampled_from(["device", "inspector"]), st.one_of(
    st.sampled_from(["../../etc", "..", ".", "/etc", "a/b", "C:\\x", "CON", " tablet-07 ", "tab\x00let", ""]),
    st.text(max_size=20)))
def test_config_values_that_become_paths_are_safe_or_refused(key, value):
    """device names the ledger file on the server, inspector goes into visit.yaml and bundles:
    a value that is not one safe path component is refused at load, naming the key."""
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        try:
            cfg = config_mod.from_mapping({"root": str(Path(tmp) / "tablet"), key: value}, Path(tmp) / "config.yaml")
        except ConfigError as exc:
            assert key in str(exc)
            return
        assert names.is_safe_component(getattr(cfg, key)), f"{key}: {getattr(cfg, key)!r} accepted"


TAGS = ["!!python/object/apply:os.system ['touch {sentinel}']",
        "!!python/object/new:os.system ['touch {sentinel}']",
        "!!python/name:os.system", "!!python/module:os",
        "!!python/object:fieldsync.config.Config {{}}", "!!binary aGVsbG8=", "!!set {{a: null}}",
        "!!timestamp 2026-11-25", "!!float .nan", "&a [*a]", "*undefined", "!custom x"]


@settings(FAST, max_examples=60)
@given(st.sampled_from(["inspector", "device", "root", "layout", "photos", "server", "sync", "new"]),
       st.sampled_from(TAGS))
def test_config_yaml_with_tags_is_refused_and_runs_nothing(key, tag):
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        sentinel = Path(tmp) / "ran"
        path = Path(tmp) / "config.yaml"
        path.write_text(f"root: {Path(tmp) / 'tablet'}\n{key}: {tag.format(sentinel=sentinel)}\n"
                        .replace(f"root: {Path(tmp) / 'tablet'}\nroot:", "root:"), encoding="utf-8")
        problem = _config_problem(lambda: config_mod.load(path))
        assert problem is None and not sentinel.exists()
        if tag.startswith("!!python"):
            with pytest.raises(ConfigError):
                config_mod.load(path)


@settings(FAST, max_examples=80)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_config_file_gives_a_config_or_a_config_error(content):
    with tempfile.TemporaryDirectory(prefix="fieldsync-fuzz-") as tmp:
        path = Path(tmp) / "config.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        assert _config_problem(lambda: config_mod.load(path)) is None


# --------------------------------------------------------------------------- names

NAME_TEXT = st.one_of(st.text(max_size=80), st.text(st.characters(codec="utf-8"), min_size=60, max_size=200),
                      st.sampled_from(["CON", "con.txt", "COM¹", "..", ".", " . ", "a/../b", "杭州/萧山",
                                       "<img src=x onerror=alert(1)>", "\u202eexe.jpg", "A\u0301", "\x85",
                                       "x" * 300, "中" * 100, "NUL.", "  "]))


@settings(FAST, max_examples=300)
@given(NAME_TEXT)
def test_a_cleaned_name_is_one_safe_stable_component(text):
    cleaned = names.clean_component(text)
    assert cleaned == names.clean_component(text)  # stable: the same folder every time
    if cleaned:
        assert names.is_safe_component(cleaned), repr(cleaned)
        assert names.clean_component(cleaned) == cleaned
        assert len(cleaned.encode("utf-8")) <= names.MAX_COMPONENT_BYTES


@settings(FAST, max_examples=300)
@given(st.from_regex(names.ACCOUNT_PATTERN, fullmatch=True), NAME_TEXT,
       st.sampled_from(["{account_no}_{name}", "{name}_{account_no}", "{account_no}", "{name}/{account_no}"]))
def test_customer_folder_names_from_data_are_one_safe_component(account, name, template):
    folder = names.customer_folder_name(template, account, name)
    assert names.is_safe_component(folder), repr(folder)
    assert folder == names.customer_folder_name(template, account, name)
    assert names.normalize_account(account) in folder


@settings(FAST, max_examples=300)
@given(NAME_TEXT, st.sampled_from(["", ".jpg", ".JPEG", ".heic"]))
def test_photo_names_are_judged_or_fitted_never_crash(stem, suffix):
    name = stem + suffix
    problem = names.photo_name_problem(name)
    assert problem is None or isinstance(problem, str)
    fitted = names.fit_name(".", name, ".fieldsync-part")
    assert len(fitted.encode("utf-8", "surrogateescape")) <= names.NAME_MAX_BYTES
    assert fitted == names.fit_name(".", name, ".fieldsync-part")
