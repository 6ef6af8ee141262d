import os

import pytest

from regstore import layout
from regstore.store import FilesystemStore
from regstore.store.base import StoreError

LIMIT = 3 << 20


def store_with(tmp_path, data):
    """A store holding ``data`` as blob data, and the key of that file."""
    key = layout.blob_data("sha256:" + "a" * 64)
    path = tmp_path / layout.V2_PREFIX / key
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return FilesystemStore(tmp_path), key


@pytest.mark.parametrize("size", [0, 1, (1 << 16) - 1, 1 << 16, (1 << 16) + 1,
                                  (1 << 20) + (1 << 16) + 7, LIMIT])
def test_a_read_gives_the_whole_file_whatever_its_size_up_to_the_limit(tmp_path, size):
    data = os.urandom(size)
    store, key = store_with(tmp_path, data)
    assert store.read(key, LIMIT) == data


def test_a_read_of_a_file_beyond_the_limit_is_refused(tmp_path):
    store, key = store_with(tmp_path, b"x" * (LIMIT + 1))
    with pytest.raises(StoreError, match=f"larger than {LIMIT} bytes"):
        store.read(key, LIMIT)
