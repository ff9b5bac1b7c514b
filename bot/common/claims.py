"""Keeping a claim on a platform update (or message) alive while a bot replica answers it."""
from __future__ import annotations

import asyncio
import logging

from storage.updates import HandledUpdates

log = logging.getLogger(__name__)


async def keep_claim(handled: HandledUpdates, update_id: int, holder: str, lease: float, answering: asyncio.Task) -> None:
    """Renew the claim every third of the lease until cancelled. Should the renewal find the claim taken (this
    replica stalled past its lease and another one answers now), cancel `answering`: one answer, not two."""
    while True:
        await asyncio.sleep(lease / 3)
        try:
            # shielded: a cancel (the answer ended) must not cut the query off and strand its database connection
            kept = await asyncio.shield(handled.renew(update_id, holder, lease))
        except Exception as exc:  # the database is briefly unreachable: try again before the lease runs out
            log.warning("%s update %s: could not renew the claim: %s", handled.platform, update_id, exc)
            continue
        if not kept:
            log.error("%s update %s: another replica took it over; stopping this answer", handled.platform, update_id)
            answering.cancel()
            return
