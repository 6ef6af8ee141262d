"""The filesystem backend: a registry root directory on a local or mounted disk."""

from __future__ import annotations

import errno
import os
import shutil
import stat as stat_mod
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from regstore.layout import V2_PREFIX
from regstore.store.base import DirEntry, FileEntry, ReadOnlyStore, Stat, StoreError, check_key


def _kind(entry: os.DirEntry[str]) -> str:
    # d_type answers these without a stat call on Linux; follow_symlinks=False keeps a
    # symlink a symlink, so nothing below the root is ever followed.
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    if entry.is_symlink():
        return "symlink"
    return "other"


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable: fsync the directory itself."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemStore:
    """A store under ``<root>/docker/registry/v2``.

    The root and the ``docker/registry/v2`` directories may themselves be symlinks (operators
    move stores to other disks that way); they are resolved once. Below them no symlink is
    followed, and every removal re-checks that its target lies inside the resolved tree.
    """

    flat_walk = False  # walking a directory costs a scandir per subdirectory
    forkable = True  # nothing but paths: a forked process reads it as well as this one
    waits = False  # a warm page cache answers at once; regstore.pool judges when it does not

    def __init__(self, root: Path, writable: bool = False) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.writable = writable
        self.v2 = Path(os.path.realpath(self.root / V2_PREFIX))
        self._v2 = str(self.v2) + "/"
        # False on filesystems whose directories do not count their subdirectories (btrfs
        # says 1): list_dir then reads each entry's type as it always can.
        try:
            self._counts_subdirectories = os.lstat(self.v2).st_nlink >= 2
        except OSError:
            self._counts_subdirectories = False

    def path(self, key: str) -> Path:
        check_key(key)
        return self.v2 / key

    def _p(self, key: str) -> str:
        # The hot paths (listing and reading hundreds of thousands of entries) build plain
        # strings: a Path per call costs more than the system call it wraps.
        check_key(key)
        return self._v2 + key

    def exists(self) -> bool:
        return self.v2.is_dir()

    def list_dir(self, key: str) -> list[DirEntry]:
        new = tuple.__new__  # a named tuple's own constructor is a Python call per entry
        names = self.subdirectories(key)
        if names is not None:
            return [new(DirEntry, (name, "dir")) for name in names]
        path = self._p(key)
        try:
            with os.scandir(path) as it:
                return [new(DirEntry, (e.name, "dir" if e.is_dir(follow_symlinks=False)
                                       else _kind(e))) for e in it]
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise StoreError(key, "expected a directory, found a file") from None
        except OSError as exc:
            raise StoreError(key, f"cannot list: {exc.strerror or exc}") from None

    def subdirectories(self, key: str) -> list[str] | None:
        if not self._counts_subdirectories:
            return None
        # Nearly every directory of a store holds directories only. Its link count is 2 plus
        # its subdirectories: when that equals 2 plus every name listed, no entry is a file or
        # a symlink, and the names alone (a C list of strings) say it all. The count is taken
        # first: a directory created meanwhile makes a mismatch, and None.
        path = self._p(key)
        try:
            links = os.lstat(path).st_nlink
            if links == 2:
                # No subdirectory: the names alone could tell of an empty directory only.
                # A blob's directory (its data file) is listed once, by list_dir, not twice.
                return None
            names = os.listdir(path)
        except FileNotFoundError:
            return []
        except OSError:
            return None  # list_dir says what is wrong
        return names if links == len(names) + 2 else None

    def walk(self, key: str) -> Iterator[FileEntry]:
        top = self._p(key)
        try:
            if not stat_mod.S_ISDIR(os.lstat(top).st_mode):
                return
        except OSError:
            return
        stack = [(top, key)]
        while stack:
            path, prefix = stack.pop()
            try:
                with os.scandir(path) as it:
                    entries = [(e.name, _kind(e)) for e in it]
            except FileNotFoundError:
                continue  # removed while we walked: nothing left to report
            except OSError as exc:
                raise StoreError(prefix, f"cannot list: {exc.strerror or exc}") from None
            for name, kind in entries:
                if kind == "dir":
                    stack.append((f"{path}/{name}", f"{prefix}/{name}"))
                else:
                    yield FileEntry(f"{prefix}/{name}", kind)

    def stat(self, key: str) -> Stat | None:
        try:
            st = os.lstat(self._p(key))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise StoreError(key, f"cannot stat: {exc.strerror or exc}") from None
        return Stat(st.st_size, st.st_mtime, stat_mod.S_ISDIR(st.st_mode))

    def holds_only_file(self, key: str, name: str) -> bool:
        # Two lstat calls instead of opening and reading a directory. A directory's link
        # count is 2 plus its subdirectories on ext4, XFS, tmpfs and most others; where it is
        # not (btrfs counts 1), the answer is False and the caller lists the directory.
        try:
            where = self._p(key)
            st = os.lstat(where)
            return st.st_nlink == 2 and stat_mod.S_ISDIR(st.st_mode) and \
                stat_mod.S_ISREG(os.lstat(f"{where}/{name}").st_mode)
        except OSError:
            return False

    def read(self, key: str, max_bytes: int) -> bytes:
        fd = self._open_fd(key)
        try:
            chunks = []
            left = max_bytes + 1
            while left > 0:
                # A read allocates what it asks for, then gives back what it did not fill: a
                # first one of 64 KiB holds nearly every manifest and link, and stays below
                # the size from which malloc maps a block of its own (regstore.cli
                # .MMAP_THRESHOLD): 1 MiB at once cost three system calls per manifest.
                want = min(left, 1 << 16 if not chunks else 1 << 20)
                chunk = os.read(fd, want)
                chunks.append(chunk)
                left -= len(chunk)
                # Less than asked of a regular file is its end: no read of nothing to learn
                # it (one system call in four for a link or a manifest). Should a file system
                # ever stop short, what was read is cut short, which no check passes.
                if len(chunk) < want:
                    break
            data = b"".join(chunks)
        except OSError as exc:
            raise StoreError(key, f"cannot read: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > max_bytes:
            raise StoreError(key, f"larger than {max_bytes} bytes")
        return data

    def open(self, key: str) -> BinaryIO:
        return os.fdopen(self._open_fd(key), "rb")

    def _open_fd(self, key: str) -> int:
        try:
            return os.open(self._p(key), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise FileNotFoundError(key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(key, "is a symlink; regstore does not follow symlinks") from None
            raise StoreError(key, f"cannot open: {exc.strerror or exc}") from None

    # --- removals -------------------------------------------------------------------------

    def removable_path(self, key: str) -> Path | None:
        """The path to remove, after checking it is inside the tree and not a symlink."""
        if not self.writable:
            raise ReadOnlyStore(key, "store opened read-only; nothing may be removed")
        path = self.path(key)
        parent = os.path.realpath(path.parent)
        if parent != str(self.v2) and not parent.startswith(str(self.v2) + os.sep):
            raise StoreError(key, "resolves outside the storage root; not removed")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat_mod.S_ISLNK(st.st_mode):
            raise StoreError(key, "is a symlink; regstore never removes through symlinks")
        return path

    def remove_file(self, key: str) -> None:
        path = self.removable_path(key)
        if path is None:
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # gone already: the removal's goal holds
        except OSError as exc:
            raise StoreError(key, f"cannot remove: {exc.strerror or exc}") from None

    def remove_tree(self, key: str) -> None:
        path = self.removable_path(key)
        if path is None:
            return
        failures: list[str] = []

        def onerror(func: object, failed: str, exc_info: object) -> None:
            failures.append(failed)

        if not path.is_dir():
            raise StoreError(key, "expected a directory, found a file; not removed")
        shutil.rmtree(path, onerror=onerror)
        if failures and path.exists():
            raise StoreError(key, f"could not remove {len(failures)} entries below it")

    def remove_trees(self, keys: Sequence[str]) -> dict[str, str]:
        if not self.writable:
            raise ReadOnlyStore(keys[0] if keys else "", "store opened read-only; nothing may "
                                "be removed")
        failed = {}
        for key in keys:
            try:
                self.remove_tree(key)
            except StoreError as exc:
                failed[key] = exc.message
        return failed

    def remove_empty_dirs(self, key: str, stop: str) -> None:
        if not self.writable:
            raise ReadOnlyStore(key, "store opened read-only; nothing may be removed")
        check_key(stop)
        if not (key + "/").startswith(stop + "/") or key == stop:
            return
        parts = key.split("/")
        stop_depth = len(stop.split("/"))
        while len(parts) > stop_depth:
            try:
                os.rmdir(self.path("/".join(parts)))
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    return
                raise StoreError("/".join(parts), f"cannot remove: {exc.strerror or exc}") from None
            parts.pop()
