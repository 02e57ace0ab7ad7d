"""The ops admins' side: browsable pages over the server tree (the literal mirror of every tablet).

`site.build` writes the pages incrementally, `thumbs` keeps the thumbnail cache, `watch` rebuilds
as uploads land. Everything generated lives under SERVER/.fieldsync/, never among mirrored files,
so a tablet's upload and the index builder never write the same file.
"""

from fieldsync.server.site import BuildResult, build, site_dir

__all__ = ["BuildResult", "build", "site_dir"]
