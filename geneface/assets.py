"""The files GeneFace++ would otherwise download at run time, kept in one mounted folder (the "assets").

Left alone, preprocessing and every render fetch HuBERT (~1.2 GB) from a model hub, and the NeRF stages
fetch vgg19 and a VGG-Face checkpoint over http. `doppel geneface fetch-assets` downloads them once, on a
host with network, into the layouts the libraries look in (a Hugging Face cache, a torch hub cache); the
containers get that folder read-only with HF_HUB_OFFLINE/TORCH_HOME pointing at it, so an offline host
works and nothing is fetched twice. BFM and audio2motion_vae are handed out by hand (see docs/avatars.md) and
are only checked for here.

Every file's SHA-256 is checked: against the pin below where one is published (torchvision puts the
first 8 hex digits of the hash in the file name), else against the hash recorded in SHA256SUMS when the
file was first fetched (trust on first use), so a file changed or cut short later is refused.
"""
from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adapters.model_files import sha256  # one file hash for the project; callers use assets.sha256

# the revision GeneFace++'s extract_hubert.py names in its cache path; Hugging Face serves it unchanged
HUBERT_REPO = "facebook/hubert-large-ls960-ft"
HUBERT_REVISION = "ece5fabbf034c1073acae96d5401b25be96709d8"
HUBERT_CACHE = f"huggingface/hub/models--{HUBERT_REPO.replace('/', '--')}"
SUMS = "SHA256SUMS"

# where the containers see the folder, and the environment that makes the libraries read it offline
MOUNT = "/assets"
OFFLINE_ENV = {
    "HF_HOME": f"{MOUNT}/huggingface",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TORCH_HOME": f"{MOUNT}/torch",
}


@dataclass(frozen=True)
class Asset:
    path: str  # relative to the assets folder
    url: str
    sha256_prefix: str = ""  # a published hash or its prefix; empty: recorded on first fetch


def _hubert(name: str) -> Asset:
    return Asset(f"{HUBERT_CACHE}/snapshots/{HUBERT_REVISION}/{name}",
                 f"https://huggingface.co/{HUBERT_REPO}/resolve/{HUBERT_REVISION}/{name}")


DOWNLOADS = [
    # HubertModel + Wav2Vec2Processor.from_pretrained: weights, config, feature extractor and CTC tokenizer
    *(_hubert(n) for n in ("config.json", "preprocessor_config.json", "pytorch_model.bin",
                           "special_tokens_map.json", "tokenizer_config.json", "vocab.json")),
    # tasks/radnerfs/losses.py loads these through torch.utils.model_zoo, i.e. from TORCH_HOME/hub/checkpoints
    Asset("torch/hub/checkpoints/vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "dcbb9e9d"),
    Asset("torch/hub/checkpoints/vgg_face_dag.pth", "http://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth"),
]

# distributed by hand (Google Drive / BaiduYun links in GeneFace++'s install guide): checked, never fetched
BY_HAND = {
    "BFM": ["01_MorphableModel.mat", "BFM_exp_idx.mat", "BFM_front_idx.mat", "BFM_model_front.mat", "Exp_Pca.bin",
            "facemodel_info.mat", "index_mp468_from_mesh35709.npy", "mediapipe_in_bfm53201.npy", "std_exp.txt"],
    "audio2motion_vae": ["config.yaml", "model_ckpt_steps_*.ckpt"],
}



class AssetError(RuntimeError):
    pass


def read_sums(root: Path) -> dict[str, str]:
    sums = {}
    if (root / SUMS).exists():
        for line in (root / SUMS).read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name:
                sums[name] = digest
    return sums


def write_sums(root: Path, sums: dict[str, str]) -> None:
    tmp = root / (SUMS + ".tmp")
    tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    tmp.replace(root / SUMS)


def _expected(asset: Asset, sums: dict[str, str]) -> str:
    return sums.get(asset.path) or asset.sha256_prefix


def _verify(asset: Asset, digest: str, sums: dict[str, str]) -> None:
    want = _expected(asset, sums)
    if want and not digest.startswith(want):
        raise AssetError(f"{asset.path}: SHA-256 {digest[:16]}… does not match the expected {want[:16]}…; "
                         "delete it and run `doppel geneface fetch-assets` again")


def _download(url: str, dest: Path) -> str:
    """Streams to a .part file, hashing as it goes; renamed into place only when complete."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    part.replace(dest)
    return digest.hexdigest()


def fetch(root: Path, *, mirror: str = "", say: Callable[[str], None] = print) -> list[str]:
    """Downloads what is missing into `root`, checks everything; returns the paths it downloaded.

    `mirror`: a base URL serving the same relative paths (an internal mirror), instead of the upstream URLs.
    """
    root.mkdir(parents=True, exist_ok=True)
    sums = read_sums(root)
    fetched = []
    for asset in DOWNLOADS:
        dest = root / asset.path
        if dest.exists():
            digest = sha256(dest)
            _verify(asset, digest, sums)
            say(f"ok       {asset.path}")
        else:
            url = f"{mirror.rstrip('/')}/{asset.path}" if mirror else asset.url
            say(f"fetching {asset.path} from {url}")
            digest = _download(url, dest)
            try:
                _verify(asset, digest, sums)
            except AssetError:
                dest.unlink()
                raise
            fetched.append(asset.path)
        sums.setdefault(asset.path, digest)
    # the Hugging Face cache resolves the default revision through refs/main
    refs = root / HUBERT_CACHE / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(HUBERT_REVISION)
    write_sums(root, sums)
    return fetched


def missing(root: Path) -> list[str]:
    """What a job needs that is not in `root` (relative paths); empty when all is there."""
    sums = read_sums(root)
    gone = [a.path for a in DOWNLOADS if not (root / a.path).exists() or a.path not in sums]
    gone += [f"{folder}/{name}" for folder, names in BY_HAND.items() for name in names
             if not any((root / folder).glob(name))]
    return gone


def describe_missing(gone: list[str]) -> str:
    downloads = {a.path for a in DOWNLOADS}
    fetch = [g for g in gone if g in downloads]
    by_hand = sorted({g.split("/")[0] for g in gone if g not in downloads})
    parts = []
    if fetch:
        parts.append(f"{len(fetch)} download(s) ({', '.join(Path(g).name for g in fetch[:3])}"
                     f"{' …' if len(fetch) > 3 else ''}): run `doppel geneface fetch-assets` on a host with network")
    if by_hand:
        parts.append(f"{' and '.join(f'{b}/' for b in by_hand)} from GeneFace++'s install guide, copied in by hand")
    return "; ".join(parts)


def check(root: Path) -> None:
    """Raises AssetError naming what is missing, before any container starts."""
    gone = missing(root)
    if gone:
        raise AssetError(f"GeneFace++ assets missing in {root}: {describe_missing(gone)} (see docs/avatars.md).")


def environment() -> dict[str, str]:
    return dict(OFFLINE_ENV)


def default_root(data_dir: Path, configured: Path | None = None) -> Path:
    return Path(configured) if configured else Path(data_dir) / "geneface-assets"
