"""Running blocking generators (a local LLM writing tokens) off the event loop."""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Callable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(make_iter: Callable[[], Iterator[T]], lock: threading.Lock | None = None) -> AsyncIterator[T]:
    """Yield items a blocking iterator produces in a worker thread. Closing the async side stops the thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            if lock is not None:
                lock.acquire()
            try:
                for item in make_iter():
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            finally:
                if lock is not None:
                    lock.release()
        except BaseException as exc:  # handed to the consumer, raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    loop.run_in_executor(None, pump)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # the thread notices at its next item and lets go of the model's lock
        stop.set()
