"""Storage backends behind one small interface (:class:`regstore.store.base.Store`)."""

from regstore.store.base import DirEntry, FileEntry, ReadOnlyStore, Stat, Store, StoreError
from regstore.store.filesystem import FilesystemStore

__all__ = ["DirEntry", "FileEntry", "FilesystemStore", "ReadOnlyStore", "Stat", "Store",
           "StoreError"]
