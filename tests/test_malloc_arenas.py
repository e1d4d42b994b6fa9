"""The arena cap takes effect in a fresh process with many allocating threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from worker.malloc_arenas import limit_arenas

# Threads that allocate and free blocks malloc serves (larger than pymalloc's 512 bytes) at the
# same time, so that glibc hands contended threads arenas of their own; then glibc's own
# report (malloc_stats, on stderr) lists every arena.
_PROGRAM = textwrap.dedent(
    """
    import ctypes, sys, threading
    from worker.malloc_arenas import limit_arenas
    arenas = int(sys.argv[1])
    if arenas:
        assert limit_arenas(arenas)
    barrier = threading.Barrier(12)
    def churn():
        barrier.wait()
        for _ in range(20_000):
            blocks = [bytearray(4096) for _ in range(8)]
            del blocks
    threads = [threading.Thread(target=churn) for _ in range(12)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _arenas_used(cap: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(cap)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_stats")
def test_cap_limits_the_arenas_of_a_threaded_process() -> None:
    uncapped = _arenas_used(0)
    capped = _arenas_used(2)
    assert capped <= 2
    # Proves the program makes glibc create arenas at all, so the cap is what held it at 2.
    assert uncapped > 2


def test_zero_leaves_the_default() -> None:
    assert limit_arenas(0) is False
