"""Thumbnails (and the JPEG previews of photos browsers cannot show) for the pages, cached in a
derived-files folder beside nothing mirrored: SERVER/.fieldsync/thumbs/ and .../previews/ for the
server's pages, ROOT/.fieldsync/thumbs/ and .../previews/ on the tablet (HEIC photos only there).

A thumbnail is `<thumbs>/<photo's path>.jpg`, a preview `<previews>/<photo's path>.jpg`; each is
fresh when it is newer than its photo. Both come from one decode of the photo, inside the
decode budget the other image work shares (photos.decode_budget_mb). JPEGs are decoded at
reduced scale (Pillow's draft mode), which is several times faster than decoding the full photo
and shrinking it afterwards. Tablets can write into the server tree, so nothing is written, and
no photo read, through a symbolic link found on the way (`base.paths.planted_link`): such a
link is reported and left alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from fieldsync.base.atomic import set_ordinary_mode
from fieldsync.base.paths import planted_link
from fieldsync.config import Photos
from fieldsync.media.imaging import DecodeBudget, decoded_bytes, open_image, register_heif
from fieldsync.media.preview import PREVIEW_EDGE, PREVIEW_QUALITY, needs_preview

THUMB_EDGE = 320
THUMB_QUALITY = 80
THUMB_SUFFIX = ".jpg"


def thumb_rel(photo_rel: str) -> str:
    """Where the thumbnail (or preview) of `photo_rel` (relative to ROOT) lives, relative to the
    thumbs (or previews) dir."""
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


def make_jpegs(photo: str, outputs: list[tuple[str, int, int]], budget: DecodeBudget | None = None,
               max_pixels: int = Photos.max_pixels) -> bool:
    """Write upright JPEGs of `photo`, one per (path, long edge, quality) in `outputs`, from one
    decode held inside `budget`; False when the photo cannot be read (nothing is raised: one
    bad photo is a placeholder on its page, never the end of a build)."""
    register_heif()
    outputs = sorted(outputs, key=lambda o: o[1], reverse=True)  # each is scaled from the last
    largest = outputs[0][1]
    try:
        with open_image(photo, max_pixels) as image:
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (largest, largest))
            # The decoded pixels, plus what thumbnail()'s reduce and resize hold beside them.
            with (budget or DecodeBudget(0)).admit(2 * decoded_bytes(image)):
                image.load()
                for path, edge, quality in outputs:
                    # Scaled in stored orientation, turned upright afterwards: the turn then
                    # copies the small image, not the decoded one (the box is square either way).
                    image.thumbnail((edge, edge))
                    upright = ImageOps.exif_transpose(image)
                    if upright.mode not in ("RGB", "L"):
                        upright = upright.convert("RGB")
                    _save(upright, path, quality)
    except Exception:  # whatever a damaged or hostile file makes Pillow or libheif raise
        return False
    return True


def _save(image: Image.Image, thumb: str, quality: int = THUMB_QUALITY) -> None:
    # A thumbnail is a cache that can always be made again, so it is replaced atomically
    # (readers never see half a file) but without fsync: a million fsyncs would dominate a
    # full build, and a file lost in a crash is simply regenerated.
    folder = os.path.dirname(thumb)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".thumb.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            set_ordinary_mode(fd)  # mkstemp makes 0600; the site's readers need the umask's mode
            image.save(handle, "JPEG", quality=quality, optimize=False)
        os.replace(tmp, thumb)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class ThumbnailCache:
    """Make missing or stale thumbnails, and with `previews_dir` the previews of photos browsers
    cannot show; identical files (same inode) share one thumbnail and one preview."""

    def __init__(self, root: Path, thumbs_dir: Path, previews_dir: Path | None = None,
                 budget: DecodeBudget | None = None, max_pixels: int = Photos.max_pixels):
        self.root = str(root)
        self.thumbs_dir = str(thumbs_dir)
        self.previews_dir = None if previews_dir is None else str(previews_dir)
        self.budget = budget or DecodeBudget.from_config(Photos())
        self.max_pixels = max_pixels
        self.links: set[str] = set()  # planted links met (relative to root), left alone
        # Photo (relative to root) -> whether its preview is usable, for the photos that need one.
        self.previews: dict[str, bool] = {}
        self._safe_dirs: set[str] = set()  # folders (relative to root) checked free of links
        self._by_inode: dict[tuple[int, int, str], str] = {}
        self._count_lock = threading.Lock()
        self.workers = min(8, os.cpu_count() or 1)
        self.made = 0
        self.failed = 0

    def path_of(self, photo_rel: str) -> str:
        return os.path.join(self.thumbs_dir, thumb_rel(photo_rel))

    def preview_path_of(self, photo_rel: str) -> str:
        return os.path.join(self.previews_dir or self.thumbs_dir, thumb_rel(photo_rel))

    def ensure(self, photo_rel: str) -> bool:
        """True when a usable thumbnail exists (made now if needed). A photo browsers cannot
        show also gets its preview (when the cache has a previews dir), from the same decode;
        whether it is usable is then in `previews`."""
        photo = os.path.join(self.root, photo_rel)
        thumb = self.path_of(photo_rel)
        if not (self._no_link(photo_rel) and self._no_link(os.path.relpath(thumb, self.root))):
            with self._count_lock:
                self.failed += 1
            return False
        stale = [] if self._current(photo, thumb) else [(thumb, THUMB_EDGE, THUMB_QUALITY)]
        preview = None
        if self.previews_dir is not None and needs_preview(photo):
            preview = self.preview_path_of(photo_rel)
            if not self._no_link(os.path.relpath(preview, self.root)):
                preview = None
                self._note_preview(photo_rel, False)
            elif self._current(photo, preview):
                self._note_preview(photo_rel, True)
            else:
                stale.append((preview, PREVIEW_EDGE, PREVIEW_QUALITY))
        if not stale:
            return True
        made = make_jpegs(photo, stale, self.budget, self.max_pixels)
        with self._count_lock:
            if made:
                self.made += 1
            else:
                self.failed += 1
        if made:
            for target, _, _ in stale:
                self._remember(photo, target)
        if preview is not None and any(target == preview for target, _, _ in stale):
            self._note_preview(photo_rel, made)
        return made or stale[0][0] != thumb

    def _note_preview(self, photo_rel: str, usable: bool) -> None:
        with self._count_lock:
            self.previews[photo_rel] = usable

    def _current(self, photo: str, target: str) -> bool:
        """The derived file `target` of `photo` is fresh, or was just shared from an identical file."""
        return is_fresh(photo, target) or self._link_same_file(photo, target)

    def ensure_all(self, photo_rels: list[str]) -> dict[str, bool]:
        """ensure() for many photos, on as many threads as CPUs: Pillow releases the GIL while
        it decodes, resizes and encodes, so a visit's thumbnails are made in parallel."""
        if len(photo_rels) < 2 or self.workers < 2:
            return {rel: self.ensure(rel) for rel in photo_rels}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="fieldsync-thumb") as pool:
            return dict(zip(photo_rels, pool.map(self.ensure, photo_rels)))

    def prune(self, folder_rel: str, photo_names: list[str]) -> None:
        """Remove the thumbnails and previews kept for photos of `folder_rel` (a photo folder,
        relative to root) that are no longer among `photo_names` (deleted, renamed)."""
        wanted = {thumb_rel(name) for name in photo_names}
        for base in filter(None, (self.thumbs_dir, self.previews_dir)):
            folder = os.path.join(base, folder_rel)
            # _no_link checks a file's folders: a name in the folder stands for its files.
            probe = os.path.relpath(os.path.join(folder, THUMB_SUFFIX), self.root)
            if not os.path.isdir(folder) or not self._no_link(probe):
                continue
            for name in os.listdir(folder):
                if name.endswith(THUMB_SUFFIX) and not name.startswith(".") and name not in wanted:
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                        os.unlink(os.path.join(folder, name))

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
        source = self._by_inode.get((st.st_dev, st.st_ino, self._kind(thumb)))
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
                self._by_inode[(st.st_dev, st.st_ino, self._kind(thumb))] = thumb

    def _kind(self, target: str) -> str:
        """Which cache `target` belongs to: a thumbnail is never shared as a preview."""
        inside = self.previews_dir is not None and target.startswith(self.previews_dir + os.sep)
        return "preview" if inside else "thumb"


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return 0
