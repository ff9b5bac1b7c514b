"""Running blocking generators (a local LLM writing tokens) off the event loop."""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncGenerator, Callable, Iterator, TypeVar, cast

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(make_iter: Callable[[], Iterator[T]], lock: threading.Lock | None = None,
                            stop: threading.Event | None = None) -> AsyncGenerator[T, None]:
    """Yield items a blocking iterator produces in a worker thread. Closing the async side (a timeout, a cancelled
    reply) sets `stop`: a run still waiting for the lock never starts, and a running one ends at its next item,
    or sooner where the iterator itself watches `stop` (a model checking it per token)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = stop or threading.Event()

    def pump() -> None:
        try:
            if lock is not None:
                while not lock.acquire(timeout=0.05):
                    if stop.is_set():
                        return  # given up on while it waited: it must not run after all
            try:
                if stop.is_set():
                    return
                items = make_iter()
                try:
                    for item in items:
                        if stop.is_set():
                            break
                        hand(item)
                finally:
                    close = getattr(items, "close", None)
                    if close is not None:
                        close()
            finally:
                if lock is not None:
                    lock.release()
        except BaseException as exc:  # handed to the consumer, raised there
            hand(exc)
        finally:
            hand(_DONE)

    def hand(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is waiting for the item any more
            pass

    loop.run_in_executor(None, pump)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        # the thread notices at its next item and lets go of the model's lock
        stop.set()
