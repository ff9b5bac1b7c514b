"""Where training jobs keep their working files (checkpoints, prepared data) so that any node can resume them.

The root is a folder (a shared mount) or an object-store URL, reached through fsspec: `/srv/doppel`,
`file:///srv/doppel`, `s3://bucket/doppel`, ... Job `N`'s files live under `<root>/jobs/N/`. A node trains in a
scratch folder of its own and pushes what changed to the store at each checkpoint; a node resuming the job pulls
them back first. Only files the jobs wrote themselves pass through here (numpy archives, torch state dicts), and
they are read back with the same safe loaders as before (`weights_only=True`, `allow_pickle=False`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from fsspec.core import url_to_fs


class ArtifactStore:
    def __init__(self, root: str) -> None:
        if not root:
            raise ValueError("an artifact store needs a folder or a URL")
        self.root = root.rstrip("/")
        # raises ValueError naming the protocol when fsspec has no filesystem for it (or lacks its package)
        self.fs, self._root_path = url_to_fs(self.root)
        self._pushed: dict[tuple[int, str], tuple[int, int]] = {}

    def job_url(self, job_id: int) -> str:
        return f"{self.root}/jobs/{job_id}"

    def _job_path(self, job_id: int) -> str:
        return f"{self._root_path}/jobs/{job_id}"

    def holds(self, job_id: int, url: str) -> bool:
        """Whether `url` (a job's recorded checkpoint) is one of this store's files of that job."""
        return bool(url) and url.startswith(self.job_url(job_id) + "/")

    def push(self, job_id: int, local_dir: Path) -> None:
        """Copy the files of `local_dir` that changed since the last push into the job's folder.

        Each file goes under a temporary name first and is then moved into place, so a node lost mid-copy
        leaves the previous version whole.
        """
        target = self._job_path(job_id)
        self.fs.makedirs(target, exist_ok=True)
        for path in sorted(local_dir.iterdir()):
            if not path.is_file() or path.name.endswith((".tmp", ".part")) or ".tmp." in path.name:
                continue
            stat = path.stat()
            key, seen = (job_id, path.name), (stat.st_size, stat.st_mtime_ns)
            if self._pushed.get(key) == seen:
                continue
            remote = f"{target}/{path.name}"
            self.fs.put_file(str(path), remote + ".part")
            self.fs.mv(remote + ".part", remote)
            self._pushed[key] = seen

    def pull(self, job_id: int, local_dir: Path) -> list[str]:
        """Copy the job's stored files into `local_dir` (made empty first); returns their names."""
        shutil.rmtree(local_dir, ignore_errors=True)
        local_dir.mkdir(parents=True)
        source = self._job_path(job_id)
        if not self.fs.exists(source):
            return []
        names = []
        for entry in self.fs.ls(source, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] != "file" or name.endswith(".part"):
                continue
            self.fs.get_file(entry["name"], str(local_dir / name))
            stat = (local_dir / name).stat()
            self._pushed[(job_id, name)] = (stat.st_size, stat.st_mtime_ns)
            names.append(name)
        return sorted(names)

    def remove(self, job_id: int) -> None:
        path = self._job_path(job_id)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
