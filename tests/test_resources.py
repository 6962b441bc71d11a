"""learndyn.resources: memory checks refuse before allocating, with numbers and advice."""

import pytest

from learndyn import resources


def test_env_limit_parsed(monkeypatch):
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "2G")
    assert resources.available_memory() == 2 * 2**30
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "512MiB")
    assert resources.available_memory() == 512 * 2**20
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "0")
    assert resources.available_memory() > 2**60


def test_check_memory_refuses_with_advice(monkeypatch):
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "1G")
    resources.check_memory(0.5 * 2**30, what="x", reduce="reduce y")
    with pytest.raises(resources.InsufficientMemoryError, match=r"x needs about 2 GiB.*1 GiB.*reduce y"):
        resources.check_memory(2 * 2**30, what="x", reduce="reduce y")


def test_available_memory_is_positive_and_bounded_by_meminfo(monkeypatch):
    monkeypatch.delenv("LEARNDYN_MEMORY_LIMIT", raising=False)
    avail = resources.available_memory()
    with open("/proc/meminfo") as fh:
        total = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("MemTotal:"))
    assert 0 < avail <= total
