"""The demo voice and face that ship with the project, so `make demo` shows a cloned voice and a talking head offline.

The voice was fine-tuned from the lite base (RVC/lite_base.py) on the shared en speaker's recordings (Allison
Smith, CC-BY-SA-3.0, see assets/README.md); the face is a public-domain NASA portrait (scikit-image's "astronaut").
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from bot.wiring import Services
from core.errors import BadInput
from core.types import ConversationKey, VoiceEngine

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"
DEMO_VOICE = DEMO_DIR / "voice.lite.pt"
DEMO_PORTRAIT = DEMO_DIR / "portrait.jpg"
NAME = "demo"


async def install_demo(services: Services, conversation: ConversationKey | None = None) -> str:
    """Registers the shipped voice and avatar under the name "demo" (again each time: the checkout may have moved),
    and starts `conversation` afresh, so that every `make demo` answers its question the same way."""
    from bot.common.avatars import add_photo_avatar, find_avatar

    for path in (DEMO_VOICE, DEMO_PORTRAIT):
        if not path.is_file():
            raise BadInput(f"The demo file {path.name} is missing from assets/demo; check out the repository again.")
    await services.voices.upsert(NAME, VoiceEngine.LITE, "en", ready=True, params={"artifact": str(DEMO_VOICE)})
    avatar = await find_avatar(services, NAME)
    if avatar is None or not avatar.ready:
        await add_photo_avatar(services, NAME, await asyncio.to_thread(DEMO_PORTRAIT.read_bytes))
    if conversation is not None:
        await services.history.reset(conversation)
    return NAME


async def warm_demo(services: Services) -> float:
    """Seconds it took to load every model and say one sentence in the demo voice with the demo face."""
    from bot.common.warmup import warm_up

    return await warm_up(services, voice=NAME, avatar=NAME)
