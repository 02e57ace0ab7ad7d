"""The master data with its search index kept in step: what an import writes through.

The store (store.py) knows nothing of search, and search reads the store: this module is the
one place that says "customers replaced, so the index is rebuilt", keeping data flowing one way.
"""

from __future__ import annotations

from collections.abc import Iterable

from fieldsync.masterdata.index_file import rebuild_index
from fieldsync.masterdata.store import INDEX_STEP, CustomerStore, StepFn


class IndexedStore(CustomerStore):
    """A CustomerStore whose search index is rebuilt whenever its data is replaced (an import's
    merge, or a replace), so the first `find` after an import does not pay for the build."""

    def replace(self, records: Iterable[dict], source: str, step: StepFn | None = None) -> list[dict]:
        step = step or (lambda name: None)
        rows = super().replace(records, source, step)
        # The search index belongs to this version of the data (index_file.py checks the stamp).
        step(INDEX_STEP)
        rebuild_index(self.state_dir, rows)
        return rows
