"""The GeneFace++ engine's run-time downloads, fetched once into the mounted assets folder (`doppel geneface`)."""
from __future__ import annotations

import asyncio
from pathlib import Path


def assets_root(settings, folder: str | None) -> Path:
    from geneface import assets

    return Path(folder) if folder else assets.default_root(settings.data_dir, settings.geneface_assets_dir)


async def fetch_and_check(root: Path, *, fetch: bool, mirror: str = "") -> tuple[int, list[str]]:
    """(exit code, lines to print): 0 all in place, 1 something still missing, 2 a fetch failed."""
    from geneface import assets

    lines = []
    if fetch:
        try:
            fetched = await asyncio.to_thread(assets.fetch, root, mirror=mirror)
        except (assets.AssetError, OSError) as exc:
            return 2, [f"doppel: {exc}"]
        lines.append(f"{root}: {len(fetched)} file(s) fetched, {len(assets.DOWNLOADS) - len(fetched)} already there and checked")
    gone = assets.missing(root)
    if gone:
        return 1, lines + [f"{root} still lacks {assets.describe_missing(gone)} (see docs/avatars.md)"]
    return 0, lines + ["all GeneFace++ assets are in place"]
