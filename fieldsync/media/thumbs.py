"""Thumbnails for the server pages, cached under SERVER/.fieldsync/thumbs/ beside nothing mirrored.

A thumbnail is `<thumbs>/<photo's path>.jpg` and is fresh when it is newer than its photo.
JPEGs are decoded at reduced scale (Pillow's draft mode), which is several times faster
than decoding the full photo and shrinking it afterwards. Tablets can write into the server
tree, so nothing is written, and no photo read, through a symbolic link found on the way
(`base.paths.planted_link`): such a link is reported and left alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from fieldsync.base.atomic import set_ordinary_mode
from fieldsync.base.paths import planted_link
from fieldsync.errors import ImageError
from fieldsync.media.imaging import open_image, register_heif

THUMB_EDGE = 320
THUMB_QUALITY = 80
THUMB_SUFFIX = ".jpg"


def thumb_rel(photo_rel: str) -> str:
    """Where the thumbnail of `photo_rel` (relative to ROOT) lives, relative to the thumbs dir."""
    return photo_rel + THUMB_SUFFIX


def is_fresh(photo: str, thumb: str) -> bool:
    try:
        t = os.stat(thumb)
    except FileNotFoundError:
        return False
    try:
        p = os.stat(photo)
    except FileNotFoundError:
        return True  # the photo went away; the page will no longer link it
    # An empty file is what a crash between write and rename can leave: make it again.
    return t.st_size > 0 and t.st_mtime_ns >= p.st_mtime_ns


def make_thumbnail(photo: str, thumb: str, edge: int = THUMB_EDGE) -> bool:
    """Write the thumbnail of `photo` to `thumb`; False when the photo cannot be read."""
    register_heif()
    try:
        with open_image(photo) as image:
            if image.format == "JPEG":
                image.draft("RGB", (edge, edge))
            image = ImageOps.exif_transpose(image)
            image.thumbnail((edge, edge))
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            _save(image, thumb)
    except (ImageError, UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def _save(image: Image.Image, thumb: str) -> None:
    # A thumbnail is a cache that can always be made again, so it is replaced atomically
    # (readers never see half a file) but without fsync: a million fsyncs would dominate a
    # full build, and a file lost in a crash is simply regenerated.
    folder = os.path.dirname(thumb)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".thumb.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            set_ordinary_mode(fd)  # mkstemp makes 0600; the site's readers need the umask's mode
            image.save(handle, "JPEG", quality=THUMB_QUALITY, optimize=False)
        os.replace(tmp, thumb)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class ThumbnailCache:
    """Make missing or stale thumbnails; identical files (same inode) share one thumbnail."""

    def __init__(self, root: Path, thumbs_dir: Path):
        self.root = str(root)
        self.thumbs_dir = str(thumbs_dir)
        self.thumbs_rel = os.path.relpath(self.thumbs_dir, self.root)
        self.links: set[str] = set()  # planted links met (relative to root), left alone
        self._safe_dirs: set[str] = set()  # folders (relative to root) checked free of links
        self._by_inode: dict[tuple[int, int], str] = {}
        self._count_lock = threading.Lock()
        self.workers = min(8, os.cpu_count() or 1)
        self.made = 0
        self.failed = 0

    def path_of(self, photo_rel: str) -> str:
        return os.path.join(self.thumbs_dir, thumb_rel(photo_rel))

    def ensure(self, photo_rel: str) -> bool:
        """True when a usable thumbnail exists (made now if needed)."""
        photo = os.path.join(self.root, photo_rel)
        thumb = self.path_of(photo_rel)
        if not (self._no_link(photo_rel) and self._no_link(os.path.join(self.thumbs_rel, thumb_rel(photo_rel)))):
            with self._count_lock:
                self.failed += 1
            return False
        if is_fresh(photo, thumb):
            return True
        if self._link_same_file(photo, thumb):
            return True
        made = make_thumbnail(photo, thumb)
        with self._count_lock:
            if made:
                self.made += 1
                self._remember(photo, thumb)
            else:
                self.failed += 1
        return made

    def ensure_all(self, photo_rels: list[str]) -> dict[str, bool]:
        """ensure() for many photos, on as many threads as CPUs: Pillow releases the GIL while
        it decodes, resizes and encodes, so a visit's thumbnails are made in parallel."""
        if len(photo_rels) < 2 or self.workers < 2:
            return {rel: self.ensure(rel) for rel in photo_rels}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="fieldsync-thumb") as pool:
            return dict(zip(photo_rels, pool.map(self.ensure, photo_rels)))

    def _no_link(self, rel: str) -> bool:
        """True when no part of ROOT/rel is a symbolic link; a link found is remembered.
        Folders found clean are not checked again in this run (a visit has many photos)."""
        folder, name = os.path.split(rel)
        if folder not in self._safe_dirs:
            link = planted_link(self.root, folder)
            if link is not None:
                self.links.add(link)
                return False
            self._safe_dirs.add(folder)
        if stat.S_ISLNK(_lstat_mode(os.path.join(self.root, rel))):
            self.links.add(rel)
            return False
        return True

    def _link_same_file(self, photo: str, thumb: str) -> bool:
        # Hard-linked copies of one photo (e.g. a backup scheme, or the benchmark's tree)
        # need one thumbnail, not one each.
        try:
            st = os.stat(photo)
        except FileNotFoundError:
            return False
        source = self._by_inode.get((st.st_dev, st.st_ino))
        if source is None or not os.path.exists(source):
            return False
        os.makedirs(os.path.dirname(thumb), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(thumb)
        try:
            os.link(source, thumb)
        except OSError:
            return False
        return True

    def _remember(self, photo: str, thumb: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(photo)
            if st.st_nlink > 1:
                self._by_inode[(st.st_dev, st.st_ino)] = thumb



def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return 0
