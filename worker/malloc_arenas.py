"""Caps glibc's malloc arenas in a worker process before its threads start.

glibc gives each thread that contends for the heap an arena of its own, up to eight per core,
and memory freed into one arena is not reused by threads on another. A worker process runs 8
to 16 threads (Dramatiq's workers, the poll pool, botocore's connection pool), so its peak RSS
grows with the thread count rather than with the work (figures in ``docs/performance.md``).
Few arenas cost little here: the hot path allocates small objects, which CPython's own
allocator serves without malloc. This does what ``MALLOC_ARENA_MAX`` does, from renderq's
settings, so that every launcher (Procfile, compose, systemd, a bare ``dramatiq``) gets it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: ``M_ARENA_MAX`` from glibc's ``<malloc.h>``.
_M_ARENA_MAX = -8


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int) -> bool:
    """Allows at most ``arenas`` malloc arenas from now on; 0 leaves glibc's default.

    Returns whether the limit is in force: False on a C library without glibc's ``mallopt``
    (musl, macOS), where there is nothing to cap.
    """
    if arenas <= 0:
        return False
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)))
