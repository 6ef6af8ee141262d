import pickle
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regstore.inventory import Tag, TagTable

NAMES = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
DIGESTS = st.sampled_from([None] + [f"sha256:{c * 64}" for c in "0123"])
TAGS = st.dictionaries(NAMES, st.tuples(DIGESTS, st.frozensets(DIGESTS.filter(bool)),
                                        st.booleans(), st.booleans()), max_size=8)


@given(TAGS)
def test_a_tag_table_answers_as_the_dict_of_tags_it_was_made_from(spec):
    tags = {name: Tag(name, current, set(index) if index else frozenset(), valid, bad)
            for name, (current, index, valid, bad) in spec.items()}
    table = TagTable(tags)
    assert table.values() == list(tags.values()) and table.items() == list(tags.items())
    assert list(table) == list(tags) and len(table) == len(tags)
    assert all(table[name] == tag and table.get(name) == tag for name, tag in tags.items())
    assert "/" not in tags and table.get("/") is None
    with pytest.raises(KeyError):
        table["/"]
    # Tags with only a name and a target are made anew; the others are kept whole.
    assert all((table[n] is t) == bool(t.index or not t.valid_name or t.bad_link)
               for n, t in tags.items())
    again = pickle.loads(pickle.dumps(table))
    assert again.items() == table.items()
    # Come from another process (copies of the digests), the digests of the tags kept whole
    # are the interpreter's shared strings again; the others' are made at each access from
    # where they are packed.
    assert all(type(t.current) is str and len(t.current) == 71
               for t in table.values() if t.current and table[t.name] is not tags[t.name])
    shared = {name: (tag.current and sys.intern(tag.current), set(map(sys.intern, tag.index)))
              for name, tag in tags.items()}
    copies = pickle.loads(pickle.dumps(TagTable({
        name: Tag(name, tag.current and "".join(tag.current), {"".join(d) for d in tag.index},
                  tag.valid_name, tag.bad_link) for name, tag in tags.items()})))
    assert copies.items() == table.items()
    assert all(t.current is shared[t.name][0] for t in copies.values() if tags[t.name].index
               or not tags[t.name].valid_name or tags[t.name].bad_link)
    assert all(any(d is s for s in shared[t.name][1]) for t in copies.values() for d in t.index)


@pytest.mark.parametrize("compact", [False, True])
def test_each_repository_gives_what_an_inventory_lists(tmp_path, compact):
    import os

    from regstore import layout
    from regstore.findings import Finding
    from regstore.inventory import Repository, each_repository, take_inventory
    from regstore.store import FilesystemStore
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    v2 = root / "docker/registry/v2"
    hex64 = "ab" * 32
    (v2 / "repositories/App/_manifests/revisions/sha256" / hex64).mkdir(parents=True)
    os.symlink(tmp_path, v2 / "repositories/evil")  # an error of the tree
    (v2 / "repositories/stray-file").write_bytes(b"x")  # a hint
    tags = v2 / layout.tags_dir(next(p.name for p in (v2 / "repositories").iterdir()
                                     if (p / "_manifests/tags").is_dir()))
    (tags / "bad@tag").mkdir()  # a repository's own finding
    store = FilesystemStore(root)
    whole = take_inventory(store, tag_history=False, blobs=False, compact=compact)
    items = list(each_repository(store, jobs=2, tag_history=False, compact=compact))
    repos = [r for r in items if isinstance(r, Repository)]
    findings = [f for f in items if isinstance(f, Finding)]
    assert len(repos) + len(findings) == len(items)
    assert [r.name for r in repos] == list(whole.repositories)
    for repo in repos:
        other = whole.repositories[repo.name]
        assert (set(repo.revisions), sorted(repo.tags.items()), repo.uploads) == \
            (set(other.revisions), sorted(other.tags.items()), other.uploads)
        assert repo.layers == other.layers
    assert sorted(map(repr, findings)) == sorted(map(repr, whole.blocking + whole.findings))
    assert {f.kind for f in findings} >= {"symlink", "invalid-repository-name",
                                           "stray-entry", "invalid-tag-name"}
