"""Building and running the Telegram bot: the Bot on a configurable API server, the Dispatcher, its routers.

Everything handlers need is made once here and reaches them by parameter name (services, dialogue,
answerer, access, queue, statuses); per-message gates are middlewares.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.token import TokenValidationError
from aiogram.exceptions import TelegramConflictError, TelegramNetworkError, TelegramUnauthorizedError
from aiohttp import web

from adapters.settings import Settings
from bot.common.access import AccessPolicy
from bot.common.dialogue import Dialogue
from bot.common.ratelimit import RateLimiter, error_replies
from bot.common.userqueue import UserQueue
from bot.telegram import admin, errors, rvc_admin, talk, user_commands
from bot.telegram.answer import Answerer
from bot.telegram.delivery import Delivery, Sweeper
from bot.telegram.fsm_storage import ChatSettingsStorage
from bot.telegram.job_status import JobStatusMessages
from bot.telegram.middlewares import AccessMiddleware, RateLimitMiddleware, TouchMiddleware
from bot.telegram.polling import Poller
from bot.telegram.sending import SendRetries
from bot.telegram.webhook import make_app, webhook_secret
from bot.wiring import Services
from core.errors import DoppelError, StartupError
from storage.updates import HandledUpdates

log = logging.getLogger(__name__)


def build_bot(settings: Settings) -> Bot:
    token = settings.telegram_token.get_secret_value()
    if not token:
        raise StartupError("not set; put the token @BotFather gave you in .env", setting="DOPPEL_TELEGRAM_TOKEN",
                           doc="docs/telegram.md")
    api = TelegramAPIServer.from_base(settings.telegram_api_url, is_local=settings.telegram_api_local)
    try:
        # no default parse_mode: answers go out as plain text, so nothing a model writes can break Markdown parsing
        return Bot(token, session=AiohttpSession(api=api), default=DefaultBotProperties(parse_mode=None))
    except TokenValidationError:
        raise StartupError("this is not a bot token (they look like 123456:ABC-...)", setting="DOPPEL_TELEGRAM_TOKEN",
                           doc="docs/telegram.md") from None


def build_dispatcher(services: Services, bot: Bot) -> Dispatcher:
    settings = services.settings
    dp = Dispatcher(storage=ChatSettingsStorage(services.chats))
    access = AccessPolicy(settings, services.users, "tg")
    queue = UserQueue(max_waiting=settings.telegram_max_waiting, max_running=settings.telegram_replies_at_once or None)
    dialogue = Dialogue(services)
    dp.workflow_data.update(
        services=services, dialogue=dialogue, access=access, queue=queue, error_replies=error_replies(),
        answerer=Answerer(services, dialogue, queue),
        statuses=JobStatusMessages(bot, services.jobs, settings.telegram_progress_interval),
    )
    dp.message.middleware(AccessMiddleware(access))
    dp.message.middleware(RateLimitMiddleware(RateLimiter(settings.rate_limit_per_minute)))
    dp.message.middleware(TouchMiddleware(services.users))
    # routers are made per dispatcher (an aiogram router joins one parent), so tests and the benchmark can run several bots
    dp.include_routers(errors.make_router(), admin.make_router(), rvc_admin.make_router(), user_commands.make_router(),
                       talk.make_router())
    return dp


class TelegramBot:
    """One running bot: polling or webhook by config, stopped by `stop` (graceful) or by cancelling `run`."""

    def __init__(self, services: Services, bot: Bot | None = None) -> None:
        self.services = services
        self.bot = bot or build_bot(services.settings)
        self.sends = SendRetries()
        self.bot.session.middleware(self.sends)
        self.dispatcher = build_dispatcher(services, self.bot)
        self.delivery = Delivery(self.bot, self.dispatcher, HandledUpdates(services.sessions, "telegram"), sends=self.sends,
                                 lease=services.settings.replica_lease_seconds)
        self.stop_event = asyncio.Event()

    @property
    def statuses(self) -> JobStatusMessages:
        return self.dispatcher["statuses"]

    async def run(self) -> None:
        try:
            await self._introduce()
            await self.statuses.resume()
            if self.services.settings.telegram_webhook_url:
                await self._run_webhook()
            else:
                await self._run_polling()
        finally:
            # cancelling run() is a crash as far as updates go: unfinished ones stay in the inbox
            await self.delivery.abort()
            await self.statuses.close()
            with suppress(Exception):
                await self.bot.session.close()

    async def _introduce(self) -> None:
        """getMe first: a wrong token or an unreachable server is said plainly, before anything else starts."""
        settings = self.services.settings
        try:
            me = await self.bot.me()
        except TelegramUnauthorizedError:
            raise StartupError("Telegram rejected the bot token", setting="DOPPEL_TELEGRAM_TOKEN", doc="docs/telegram.md") from None
        except TelegramNetworkError as exc:
            raise StartupError(f"could not reach the Telegram Bot API at {settings.telegram_api_url}: {exc.message}",
                               setting="DOPPEL_TELEGRAM_API_URL", doc="docs/telegram.md") from None
        log.info("Telegram bot @%s on %s", me.username, settings.telegram_api_url)
        await self._fill_menu()

    async def _fill_menu(self) -> None:
        """setMyCommands, so Telegram's menu lists what the bot understands: everyone's commands, and the admin
        ones too in each admin's private chat. A refusal costs the menu only, not the bot."""
        from aiogram.exceptions import TelegramAPIError
        from aiogram.types import BotCommandScopeChat

        everyone = user_commands.menu(user_commands.HELP)
        try:
            await self.bot.set_my_commands(everyone)
            for admin_id in self.services.settings.admin_ids:
                await self.bot.set_my_commands(user_commands.menu(user_commands.HELP + user_commands.ADMIN_HELP),
                                               scope=BotCommandScopeChat(chat_id=admin_id))
        except TelegramAPIError as exc:
            log.warning("could not fill the command menu: %s", exc)

    async def _run_polling(self) -> None:
        settings = self.services.settings
        await self.bot.delete_webhook(drop_pending_updates=False)
        poller = Poller(self.delivery, timeout=settings.telegram_poll_timeout,
                        allowed_updates=self.dispatcher.resolve_used_update_types())
        try:
            await poller.run(self.stop_event)
        except TelegramConflictError:
            raise DoppelError("Another copy of this bot is already polling Telegram with the same token; "
                              "stop it first.") from None
        await self.delivery.drain(timeout=60)
        await poller.acknowledge()

    async def _run_webhook(self) -> None:
        settings = self.services.settings
        runner = web.AppRunner(make_app(self.delivery, settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.telegram_webhook_host, settings.telegram_webhook_port)
        await site.start()
        # what a replica that died mid-answer (or this one, before a restart) left in the shared inbox
        sweeping = asyncio.create_task(Sweeper(self.delivery).run(self.stop_event))
        try:
            await self.bot.set_webhook(settings.telegram_webhook_url, secret_token=webhook_secret(settings),
                                       allowed_updates=self.dispatcher.resolve_used_update_types(), drop_pending_updates=False)
            await self.stop_event.wait()
            await self.delivery.drain(timeout=60)
        finally:
            if not self.stop_event.is_set():
                sweeping.cancel()  # a crash (run cancelled); on a stop the sweeper ends between two queries
            await asyncio.gather(sweeping, return_exceptions=True)
            await runner.cleanup()

    def stop(self) -> None:
        self.stop_event.set()


async def run_telegram(services: Services) -> None:
    """`doppel telegram`: run until SIGINT/SIGTERM, then finish the answers under way."""
    import signal

    app = TelegramBot(services)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.stop)
    await app.run()
