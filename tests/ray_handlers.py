"""Job handlers that misbehave, for tests/test_ray_jobs.py. Ray actors import them by name, so they live in a module."""
from __future__ import annotations

import os
import time


async def stuck(ctx) -> str:
    await ctx.report(step=1, progress=0.1, log_line="step 1, then stuck")
    time.sleep(120)  # native code that neither returns to the event loop nor checks for a cancel
    return "finished after all"


async def crash(ctx) -> str:
    await ctx.report(step=1, progress=0.1, log_line="step 1, then the process dies")
    os._exit(1)  # what losing its node does to an actor, as seen from the worker
