"""A voice with two trained versions and a failed retraining, made straight in the database: for the front-end
tests of the lifecycle commands, which check that each command reaches the lifecycle service and says what it did
(the training itself is tested in test_lifecycle.py)."""
from __future__ import annotations

from core.types import JobStatus, VoiceEngine


async def voice_with_versions(services, name: str = "anna") -> int:
    """Returns the id of the failed job, to retry."""
    folder = services.settings.data_dir / "voices" / name
    folder.mkdir(parents=True, exist_ok=True)
    await services.voices.upsert(name, VoiceEngine.LITE, "en", ready=False, params={"dir": str(folder)})
    for version in (1, 2):
        artifact = folder / f"lite-v{version}.pt"
        artifact.write_bytes(b"weights")
        await services.voices.add_version(name, str(artifact), {"steps": 10}, number=version)
    job = await services.jobs.submit("voice", name, engine="lite", max_steps=10, gpu=None, params={"dir": str(folder)})
    await services.jobs.finish(job.id, JobStatus.FAILED, "out of memory")
    return job.id
