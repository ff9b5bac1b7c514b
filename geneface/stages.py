"""The three stages of a GeneFace++ training job as the commands its container runs: preprocessing (the steps of
the project's data_gen/runs/nerf/run.sh), the head NeRF and the torso NeRF, each leaving a marker when done."""
from __future__ import annotations

from dataclasses import dataclass

# the project's example configs: 250k updates for head and torso
HEAD_STEPS = 250_000
TORSO_STEPS = 250_000
# egs/datasets/May/lm3d_radnerf_sr.yaml (lpips_start_iters) and egs_bases/radnerf/base.yaml
# (finetune_lips_start_iter): the LPIPS and lip fine-tuning phases begin here; fewer steps skip them
FINETUNE_FROM = 200_000
# how much of the whole job each stage is, by their usual run times on one GPU
SHARES = {"preprocess": 0.15, "head": 0.45, "torso": 0.40}


@dataclass(frozen=True)
class Stage:
    name: str
    command: list[str]
    max_steps: int  # 0: counted by the "doppel-step N/M" lines of the preprocessing script instead

    @property
    def marker(self) -> str:
        return f"stage-{self.name}.done"


# preprocessing as GeneFace++'s data_gen/runs/nerf/run.sh does it, one step at a time, but stopping at the first
# failure: its scripts print some errors and carry on, so each step must also leave the file the next one reads.
# run.sh's first step (resize to 512 px at 25 fps) is done by prepare_input, and its `pkill -f void*` (for stray
# GPU holders of the authors' cluster) is left out: a fresh container has none.
def preprocess_steps(vid: str) -> list[tuple[str, str, str]]:
    """(name, command, the file it must leave) for each step."""
    raw, out = f"data/raw/videos/{vid}.mp4", f"data/processed/videos/{vid}"
    common = f"--ds_name=nerf --vid_dir={raw}"
    return [
        ("audio", f"ffmpeg -nostdin -loglevel error -y -i {raw} -f wav -ar 16000 {out}/aud.wav", f"{out}/aud.wav"),
        ("hubert", f"python data_gen/utils/process_audio/extract_hubert.py --video_id={vid}", f"{out}/aud_hubert.npy"),
        ("mel_f0", f"python data_gen/utils/process_audio/extract_mel_f0.py --video_id={vid}", f"{out}/aud_mel_f0.npy"),
        ("frames", f"ffmpeg -nostdin -loglevel error -y -i {raw} -vf fps=25,scale=w=512:h=512 -qmin 1 -q:v 1 "
                   f"-start_number 0 {out}/gt_imgs/%08d.jpg", f"{out}/gt_imgs/00000000.jpg"),
        ("segment", f"python data_gen/utils/process_video/extract_segment_imgs.py {common}", f"{out}/bg.jpg"),
        ("landmarks", f"python data_gen/utils/process_video/extract_lm2d.py {common}", f"{out}/lms_2d.npy"),
        ("3dmm", f"python data_gen/utils/process_video/fit_3dmm_landmark.py {common} --reset --debug --id_mode=global",
         f"{out}/coeff_fit_mp.npy"),
        ("binarize", f"python data_gen/runs/binarizer_nerf.py --video_id={vid}", f"data/binary/videos/{vid}/trainval_dataset.npy"),
    ]


def _script(lines: list[str]) -> list[str]:
    # fail fast: any failing command, unset variable or failing pipe stage ends the container with its code
    return ["bash", "-c", "\n".join(["set -euo pipefail", *lines])]


def stages(vid: str, head_steps: int = HEAD_STEPS, torso_steps: int = TORSO_STEPS) -> list[Stage]:
    head_dir = f"checkpoints/motion2video_nerf/{vid}_head"
    configs = f"egs/datasets/{vid}"
    # a config folder per video, copied from the project's "May" example with its video id changed
    make_config = (f"rm -rf {configs} && cp -r egs/datasets/May {configs} && "
                   f"sed -i 's/^video_id: .*/video_id: {vid}/' {configs}/*.yaml")
    steps = preprocess_steps(vid)
    pre = [make_config, f"mkdir -p data/processed/videos/{vid}/gt_imgs"]
    for i, (name, command, output) in enumerate(steps, 1):
        pre += [f"echo 'doppel-step {i}/{len(steps)}: {name}'", command,
                f"test -s {output} || {{ echo 'doppel-missing: {name} left no {output}'; exit 3; }}"]
    return [
        Stage("preprocess", _script(pre), 0),
        Stage("head", _script([make_config, f"python tasks/run.py --config={configs}/lm3d_radnerf_sr.yaml "
                               f"--exp_name=motion2video_nerf/{vid}_head --reset --hparams=max_updates={head_steps}"]),
              head_steps),
        Stage("torso", _script([make_config, f"python tasks/run.py --config={configs}/lm3d_radnerf_torso_sr.yaml "
                                f"--exp_name=motion2video_nerf/{vid}_torso --reset "
                                f"--hparams=head_model_dir={head_dir},max_updates={torso_steps}"]), torso_steps),
    ]
