"""Trained versions of a voice or avatar, kept in its `params`: which ones exist and which one serves.

`params["versions"]` lists {"version": n, <key>: path, ...what the training reported}; `params["version"]`
is the one serving and `params[<key>]` its path (voices: "artifact", avatars: "artifact_path"), so the
engines that load a voice or an avatar need to know nothing about versions.
"""
from __future__ import annotations

from datetime import datetime, UTC
from pathlib import Path

from core.errors import BadInput


def kept(params: dict, key: str) -> list[dict]:
    """The versions list; a voice or avatar trained before versions were listed counts its one artifact as its version."""
    if params.get("versions"):
        return list(params["versions"])
    if params.get(key) and params.get("version"):
        return [{"version": int(params["version"]), key: params[key]}]
    return []


def add_version(params: dict, key: str, path: str, info: dict, number: int | None = None) -> tuple[dict, int]:
    """`number`: the one the artifact's file is named after; never below the next free number."""
    versions = kept(params, key)
    number = max(number or 0, max((int(v["version"]) for v in versions), default=int(params.get("version") or 0)) + 1)
    entry = {**info, "version": number, key: path, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    return _serving({**params, "versions": versions + [entry]}, entry), number


def _serving(params: dict, entry: dict) -> dict:
    # what the version was trained with (steps, a video id) is visible at the top, where the engines look
    return {**params, **{k: v for k, v in entry.items() if k != "at"}}


def pick_version(params: dict, key: str, number: int) -> dict:
    versions = kept(params, key)
    for entry in versions:
        if int(entry["version"]) == number:
            if not Path(entry[key]).exists():
                raise BadInput(f"The files of v{number} are gone; it can't serve again.")
            return _serving({**params, "versions": versions}, entry)
    listed = ", ".join(f"v{v['version']}" for v in versions) or "none"
    raise BadInput(f"There is no version v{number} (kept: {listed}).")


def moved_paths(value, old_dir: str, new_dir: str):
    """`value` (a path, or params holding paths) with paths inside `old_dir` moved into `new_dir`."""
    if isinstance(value, str):
        if value == old_dir or value.startswith(old_dir.rstrip("/") + "/"):
            return new_dir + value[len(old_dir):]
        return value
    if isinstance(value, dict):
        return {k: moved_paths(v, old_dir, new_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [moved_paths(v, old_dir, new_dir) for v in value]
    return value
