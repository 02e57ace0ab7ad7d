"""Customer master data: the tinydb store, imports, search, publish/pull, the query page's data."""
