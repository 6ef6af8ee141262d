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
