"""One knob for CPU threads, shared by every layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run on at most ``n`` torch and BLAS threads, then restore them (``0``: leave the defaults).

    On a busy 2-core machine spinning thread pools made small-matrix work many times slower
    (measured here: a 144 × 64 logistic-regression fit 0.43 s → 0.02 s, a SmolLM2 batch
    146 s → 10 s, a 24-window encoder batch 1.2 s → 0.04 s, going from 2 threads to 1).
    """
    if not n:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(previous)
