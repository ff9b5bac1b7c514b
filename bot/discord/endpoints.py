"""Where discord.py sends its requests: the one place that points the library at a Discord API.

discord.py builds every REST URL from the class attribute `discord.http.Route.BASE` (webhooks and
interaction callbacks too), and opens its first gateway socket at `DiscordWebSocket.DEFAULT_GATEWAY`;
after READY it resumes at the `resume_gateway_url` the gateway itself announced. Both attributes are
process-wide, so one process runs one Discord bot. With no gateway URL configured we ask the API for it
(`GET /gateway/bot`), as Discord recommends, once the token is known.
"""
from __future__ import annotations

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

DEFAULT_API = "https://discord.com/api/v10"


def point_at(api_url: str, gateway_url: str = "") -> None:
    Route.BASE = (api_url or DEFAULT_API).rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def discover_gateway(client: discord.Client) -> str:
    """Ask the API which gateway to use and make it the one discord.py connects to first."""
    _shards, url, _limits = await client.http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    return url
