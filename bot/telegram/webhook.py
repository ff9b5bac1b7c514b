"""Webhook mode: Telegram posts each update to us (to one of several replicas behind one URL); we answer 200 once
the update is in the shared inbox, claimed by this replica, and answer it from there.

A crash before the 200 makes Telegram post the update again later (to any replica), and the handled-id record
makes that repeat harmless. A crash after it leaves the update in the inbox, where another replica's sweep (or
this one's, after a restart) finds it once the claim has run out: the same guarantee long polling gives.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlsplit

from aiogram.types import Update
from aiohttp import web

from adapters.settings import Settings
from bot.telegram.delivery import Delivery

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_secret(settings: Settings) -> str:
    given = settings.telegram_webhook_secret.get_secret_value()
    if given:
        return given
    # stable across restarts, unguessable without the token, and only [A-Za-z0-9] as Telegram requires
    return hashlib.sha256(b"doppel-webhook:" + settings.telegram_token.get_secret_value().encode()).hexdigest()[:48]


def webhook_path(settings: Settings) -> str:
    return urlsplit(settings.telegram_webhook_url).path or "/"


def make_app(delivery: Delivery, settings: Settings) -> web.Application:
    secret = webhook_secret(settings)

    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=401, text="bad secret")
        try:
            payload = await request.json()
            update = Update.model_validate(payload, context={"bot": delivery.bot})
        except Exception:
            return web.Response(status=400, text="not an update")
        try:
            await delivery.handled.keep(update.update_id, payload, holder=delivery.holder, lease=delivery.lease)
        except Exception as exc:  # the database is unreachable: Telegram will post it again
            log.warning("update %s: could not keep it: %s", update.update_id, exc)
            return web.Response(status=503, text="try again")
        # a repeat of an update this replica is answering joins that handling; one another replica holds is left to it
        delivery.start(update)
        return web.Response(status=200)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post(webhook_path(settings), receive)
    return app
