"""Webhook mode: Telegram posts each update to us; we answer 200 only once it is handled.

A non-2xx answer (or a crash before answering) makes Telegram post the update again later, and the
handled-id record makes that repeat harmless, the same guarantee long polling gives.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from urllib.parse import urlsplit

from aiogram.types import Update
from aiohttp import web

from bot.settings import Settings
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
            update = Update.model_validate(await request.json(), context={"bot": delivery.bot})
        except Exception:
            return web.Response(status=400, text="not an update")
        # an update Telegram repeats while we are still answering it joins that same handling
        done = await asyncio.shield(delivery.start(update))
        return web.Response(status=200 if done else 503)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post(webhook_path(settings), receive)
    return app
