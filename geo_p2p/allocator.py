"""Keep freed memory in the process, so that torch's CPU tensors are not page-faulted anew on
every forward pass.

glibc serves large allocations (above 128 KiB, a threshold it raises up to 32 MiB) with fresh
pages from the system and hands freed memory at the top of the heap back. A U-Net's activations
are megabytes each, so every batch touches them as new pages: 2,000 (bf16) to 5,000 (fp32) minor
page faults per 256 px tile with the bundled model, which cost the generator a quarter of its
fp32 speed on this project's 2-core CPU (benchmarks/README.md). Threads other than the main one
get heaps of at most 64 MiB from glibc, too small for an ngf-64 batch, so all threads share the
main heap here (the render's threads allocate a few large blocks per batch, not many small ones).
PyTorch's CPU performance guide reaches the same end by preloading jemalloc or tcmalloc; this
does it without a preload.
"""

from __future__ import annotations

import ctypes
import platform

KEEP_FREED_BYTES = 1 << 30
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def keep_freed_memory(limit: int = KEEP_FREED_BYTES) -> bool:
    """Process-wide: serve allocations up to ``limit`` bytes from the heap, and keep up to
    ``limit`` bytes of freed memory there for reuse instead of returning it to the system; one
    heap for all threads.

    The peak memory of a render does not grow (benchmarks/README.md); what it used stays with
    the process afterwards, ready for the next render. The command line calls this; scripts that
    own their process may. Returns whether it applied (glibc on Linux; other systems are left
    as they are). Older glibc caps the first threshold at 32 MiB, which is then used.
    """
    if not 0 < limit < 2**31:
        raise ValueError(f"limit must be a positive C int, got {limit}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mmap = mallopt(_M_MMAP_THRESHOLD, limit) or mallopt(_M_MMAP_THRESHOLD, min(limit, 32 << 20))
    trim = mallopt(_M_TRIM_THRESHOLD, limit)
    arena = mallopt(_M_ARENA_MAX, 1)
    return bool(mmap and trim and arena)
