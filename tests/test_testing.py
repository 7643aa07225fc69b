"""ioplex.testing: programs for test suites installed on demand."""

from __future__ import annotations

import sys

import pytest
from ioplex.testing import PackageUnavailable, ensure_debian_package, free_ports


def test_a_present_program_is_found_without_installing() -> None:
    assert ensure_debian_package("python3", sys.executable).samefile(sys.executable)
    assert ensure_debian_package("coreutils", "ls").name == "ls"


def test_a_package_that_does_not_exist_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PackageUnavailable, match="run `apt-get install -y no-such-pkg` as root"):
        ensure_debian_package("no-such-pkg", "/usr/sbin/no-such-program")


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
