"""Photos as images: what Pillow opens, EXIF facts, shrinking, thumbnails."""
