"""A thread that repeats an action while a block of code runs (the heartbeats)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def repeating(seconds: float, action: Callable[[], None], *, name: str) -> Iterator[None]:
    """Call ``action`` every ``seconds`` from a daemon thread while the block runs.

    Leaving the block stops the thread and waits for it, so no call lands afterwards.
    ``action`` handles its own errors: a missed beat is only a missed beat.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
