"""`fieldsync demo`: a self-contained tour on local folders (a file:// "server"), no network.

It builds a sandbox with the shipped sample customers (a GBK export, as the marketing
system writes them), customers, categories, visits with remarks, camera-like photos with
real EXIF, and pushes the lot to the sandbox's server folder when the sync engine is there.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw

from fieldsync import config as config_mod
from fieldsync.base.i18n import _
from fieldsync.errors import BadInput
from fieldsync.masterdata import importer
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.sync import engine
from fieldsync.tree import folders as tree
from fieldsync.tree import photos, visits

SAMPLE_CSV = "sample_customers.csv"
DEMO_INSPECTOR = "zhang.san"
DEMO_DEVICE = "demo-tablet"

# (account, business number, category, visit remarks) for the visits the demo makes.
DEMO_VISITS = [
    ("3300001234", "1", "计量装置", "外观完好，封印齐全", "铭牌清晰，型号 DTZY341"),
    ("3300001234", "3", "配电房", "发现私接线路一处", ""),
    ("3300005678", "2", "变压器", "", "容量与合同一致 630kVA"),
]
# Where the sample photos say they were taken (WGS-84), near each customer.
DEMO_GPS = {"3300001234": (30.2799, 120.1290), "3300005678": (29.8896, 121.8436)}

Progress = Callable[[str], None]


@dataclass
class DemoResult:
    sandbox: Path
    config_path: Path
    root: Path
    server: Path
    customers: int
    visits: list[Path] = field(default_factory=list)
    photos: int = 0
    synced: str | None = None  # a one-line summary of the push, or why there was none


def sample_csv_path() -> Path:
    return Path(str(resources.files("fieldsync") / "data" / SAMPLE_CSV))


def run(sandbox: Path, progress: Progress = lambda _: None) -> DemoResult:
    """Build the demo under `sandbox` (must be empty or absent) and return what was made."""
    sandbox = sandbox.expanduser().resolve()
    if sandbox.exists() and any(sandbox.iterdir()):
        raise BadInput(_("{path} is not empty; give an empty or new folder with --dir").format(path=sandbox))
    root, server = sandbox / "tablet", sandbox / "server"
    server.mkdir(parents=True)
    text = config_mod.render_default(root, DEMO_INSPECTOR, DEMO_DEVICE, server.as_uri())
    config_path = tree.init_root(root, text)
    cfg = config_mod.load(config_path)

    progress(_("importing {file} (GBK, detected automatically)").format(file=SAMPLE_CSV))
    records = importer.parse(sample_csv_path())
    IndexedStore(cfg.state_dir).merge(records, SAMPLE_CSV)
    result = DemoResult(sandbox, config_path, root, server, customers=len(records))

    started = visits.now() - timedelta(hours=2)
    for number, (account, business, category, appearance, nameplate) in enumerate(DEMO_VISITS):
        progress(_("customer {account}: {business} / {category}").format(
            account=account, business=tree.resolve_business(cfg, business), category=category))
        tree.open_customer(cfg, account)
        tree.add_category(cfg, account, business, category)
        at = started + timedelta(minutes=37 * number)
        visit = visits.new_visit(cfg, account, business, category, appearance_note=appearance,
                                 nameplate_note=nameplate, at=at)
        result.visits.append(visit)
        shots = sandbox / "camera"  # stands in for the tablet's DCIM folder
        for kind, count in (("appearance", 2), ("nameplate", 1)):
            files = [write_sample_photo(shots / f"IMG_{number}{kind[0]}{i}.jpg", at, DEMO_GPS.get(account),
                                       rotate=(i == 1)) for i in range(count)]
            photos.add_photos(cfg, visit, kind, files)
            result.photos += len(files)
    # Edit after creation: the change lands in the visit's history.
    visits.edit_visit(cfg, result.visits[0], nameplate_note="铭牌清晰，型号 DTZY341，表号已核对")
    for account in {v[0] for v in DEMO_VISITS}:
        tree.open_customer(cfg, account)  # refresh pages with the photos
    result.synced = _push(cfg, progress)
    return result


def _push(cfg: config_mod.Config, progress: Progress) -> str:
    progress(_("pushing to the demo server folder (file://)"))
    outcome = engine.sync_once(cfg)
    return str(outcome)


def write_sample_photo(path: Path, taken: datetime, gps: tuple[float, float] | None,
                       size: tuple[int, int] = (3264, 2448), rotate: bool = False) -> Path:
    """A camera-like JPEG: a large picture with EXIF capture time, camera and (optionally) GPS.

    `rotate` stores the pixels sideways with EXIF orientation 6, as phone cameras do.
    """
    width, height = (size[1], size[0]) if rotate else size
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 8, height // 8, width // 2, height // 2), outline=(200, 30, 30), width=24)
    draw.ellipse((width // 2, height // 3, width - width // 8, height - height // 8), fill=(30, 90, 200))
    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"          # Make
    exif[0x0110] = "Redmi Pad SE"    # Model
    exif[0x0112] = 6 if rotate else 1  # Orientation
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    if gps:
        lat, lon = gps
        ifd = exif.get_ifd(0x8825)
        ifd[1], ifd[2] = ("N" if lat >= 0 else "S"), _dms(abs(lat))
        ifd[3], ifd[4] = ("E" if lon >= 0 else "W"), _dms(abs(lon))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return (float(degrees), float(minutes), seconds)
