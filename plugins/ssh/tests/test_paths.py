"""Splitting get/put values and confining local names, on real files and links."""

from __future__ import annotations

import pytest
from ioplex_ssh.paths import PathRefused, Sandbox, split_transfer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a b", ("a", "b")),
        ("  data_backup/   /tmp/data_backup/ ", ("data_backup/", "/tmp/data_backup/")),
        ('"my file.txt" "/tmp/your file.txt"', ("my file.txt", "/tmp/your file.txt")),
        (r"my\ file.txt dst", ("my file.txt", "dst")),
        ("John's.txt /tmp/x", ("John's.txt", "/tmp/x")),
    ],
)
def test_split_transfer(value, expected):
    assert split_transfer(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("onlyone", "got 1 name(s) in 'onlyone'"),
        ("a b c", "got 3 name(s)"),
        ("", "got 0 name(s)"),
        ('"a b', "No closing quotation"),
        ('"" b', "got 2 name(s)"),  # an empty name is no name
    ],
)
def test_split_transfer_errors(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_transfer(value)


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "inner-link").symlink_to(root / "sub")
    (root / "outer-link").symlink_to(outside)
    (root / "sub" / "back-out").symlink_to("../../outside")
    return root, outside


def test_sandbox_resolves_names_under_the_root(tree):
    root, _ = tree
    box = Sandbox(root)
    assert box.resolve("file.txt") == box.root / "file.txt"
    assert box.resolve("sub/x") == box.root / "sub" / "x"
    assert box.resolve("sub/") == box.root / "sub"
    assert box.resolve("./sub/./x") == box.root / "sub" / "x"
    assert box.resolve("inner-link/x") == box.root / "inner-link" / "x"  # a link that stays in


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/etc/passwd", "is absolute"),
        ("../outside/x", "contains '..'"),
        ("sub/../../outside", "contains '..'"),
        ("outer-link/x", "leads outside"),
        ("sub/back-out/x", "leads outside"),
        ("", "empty local path"),
    ],
)
def test_sandbox_refuses(tree, name, why):
    root, _ = tree
    with pytest.raises(PathRefused, match=why):
        Sandbox(root).resolve(name)
