"""`make demo` (hack/demo.py) shows a refusal whole: the end of kubectl's or stella's
message is where it says what to do, and the demo once cut each line at 160 characters
(the unpinned image's "write it as repo@sha256:<64 hex> ..." was lost)."""

from __future__ import annotations

from demo import shown

UNPINNED = (
    'The Release "shop-bad" is invalid: \n'
    '* spec.components[0].image: Invalid value: "127.0.0.1:36145/shop/web:1.1": image '
    "127.0.0.1:36145/shop/web:1.1 is not pinned by digest; write it as repo@sha256:<64 hex> "
    "(stella release create --from-tags resolves tags once)"
)


def test_a_refusal_is_shown_whole_indented_and_wrapped() -> None:
    out = shown(UNPINNED)
    assert out.split() == UNPINNED.split()  # every word, in order
    assert "(stella release create --from-tags resolves tags once)" in " ".join(out.split())
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[0] == '    The Release "shop-bad" is invalid:'
    assert lines[1].startswith("    * spec.components[0].image")
    assert all(line.startswith("      ") for line in lines[2:])


def test_every_line_of_several_is_indented() -> None:
    out = shown("approved shop/shop-1-1 for staging\nnext: stella status shop/shop-1-1")
    assert out == "    approved shop/shop-1-1 for staging\n    next: stella status shop/shop-1-1"
