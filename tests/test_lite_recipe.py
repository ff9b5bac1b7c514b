"""Fine-tuning recipes (RVC/lite_recipe.py) and the development speakers' split (RVC/debian_speech.py): frozen parts
keep the base's weights while the rest learn, replayed windows come from the other set, the worker picks its recipe
by machine, and the split is fixed, disjoint and never hands out a check speaker."""
import wave

import numpy as np
import pytest
import torch

from RVC.debian_speech import check_allowed, split_prompts
from RVC.features import HOP
from RVC.lite_model import LiteConfig, LiteNet
from RVC.lite_recipe import CONTENT_STACK, RECIPES, Recipe, fine_tune, recipe_for


def _set(seconds: float, dims: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = int(seconds * 100) // 2 * 2
    t = np.arange(frames * HOP) / 16000
    audio = 0.3 * np.sin(2 * np.pi * (120 + 60 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    return {"audio": (audio * 32767).astype(np.int16), "f0": np.full(frames, 120.0 + 60 * seed, np.float32),
            "content": rng.integers(-40, 40, (frames // 2, dims)).astype(np.int8),
            "content_low": rng.integers(-40, 40, (1, frames // 2, dims)).astype(np.int8),
            "content_scale": np.array(1 / 24, np.float32)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _base(cfg: LiteConfig) -> dict:
    from RVC.lite_model import Discriminators

    torch.manual_seed(1)
    net, disc = LiteNet(cfg, wn=True), Discriminators(cfg.disc_channels)
    return {"config": cfg.to_dict(), "net": net.state_dict(), "disc": disc.state_dict()}


def test_frozen_parts_keep_the_base_weights_and_the_rest_learn():
    cfg = LiteConfig.tiny()
    cfg.content_dims = 8
    base = _base(cfg)
    recipe = Recipe("test", 60.0, max_steps=3, frozen=CONTENT_STACK)
    net, state = fine_tune(_set(2.0, 8, 0), base, recipe, cfg=cfg, device="cpu", report_every=100)
    assert state["step"] == 3
    after = net.state_dict()
    for name, before in base["net"].items():
        same = torch.equal(after[name], before)
        assert same == name.startswith(CONTENT_STACK), name
    # nothing frozen: the content stack moves too
    net, _ = fine_tune(_set(2.0, 8, 0), base, Recipe("all", 60.0, max_steps=3), cfg=cfg, device="cpu", report_every=100)
    assert not torch.equal(net.state_dict()["inp.weight"], base["net"]["inp.weight"])


def test_replay_windows_come_from_the_other_set(monkeypatch):
    from RVC import lite_train

    cfg = LiteConfig.tiny()
    cfg.content_dims = 8
    cfg.batch_size = 4
    seen: list[float] = []
    original = lite_train.Batches.sample

    def sample(self, batch):
        content, f0, audio = original(self, batch)
        seen.extend(f0[:, 0].tolist())
        return content, f0, audio

    monkeypatch.setattr(lite_train.Batches, "sample", sample)
    monkeypatch.setattr("RVC.lite_recipe.replay_set", lambda recipe: _set(2.0, 8, 1))
    fine_tune(_set(2.0, 8, 0), _base(cfg), Recipe("replay", 60.0, max_steps=2, replay_share=0.25), cfg=cfg,
              device="cpu", report_every=100)
    # per step: three windows of the speaker (120 Hz), one replayed (180 Hz)
    assert sorted(seen) == [120.0] * 6 + [180.0] * 2


def test_the_worker_picks_the_recipe_by_machine_and_refuses_unknown_names():
    assert recipe_for("cuda") is RECIPES["gpu"] and recipe_for("cpu") is RECIPES["cpu-warm"]
    assert RECIPES["cpu-warm"].warmup_steps > 0
    assert recipe_for("cpu", "cpu-frozen").frozen == CONTENT_STACK
    assert RECIPES["cpu"].batch_size == 8 and not RECIPES["cpu"].adversarial and RECIPES["gpu"].adversarial
    with pytest.raises(ValueError, match="unknown lite recipe"):
        recipe_for("cpu", "nope")


def _wav(path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))


def test_the_split_is_fixed_disjoint_and_leaves_single_words_out(tmp_path):
    for i in range(40):
        _wav(tmp_path / "sounds" / f"prompt-{i:02d}.wav", 2.0 + i % 3)
    _wav(tmp_path / "sounds" / "digits" / "1.wav", 1.0)
    _wav(tmp_path / "sounds" / "beep.wav", 0.2)
    train, held = split_prompts(tmp_path, 30.0)
    again = split_prompts(tmp_path, 30.0)
    assert (train, held) == again
    assert 30.0 <= sum(2.0 + int(p.stem[-2:]) % 3 for p in train) < 34.0
    assert not set(train) & set(held) and len(train) + len(held) == 40
    assert all("digits" not in p.parts and p.stem != "beep" for p in train + held)


@pytest.mark.parametrize("package", ["asterisk-prompt-it-menardi-wav", "asterisk-prompt-es-co", "asterisk-prompt-fr-armelle",
                                     "asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru", "asterisk-core-sounds-ru-gsm"])
def test_development_and_check_speakers_are_never_training_data(package):
    with pytest.raises(ValueError, match="nothing may be trained"):
        check_allowed(package)


def test_other_prompt_sets_may_be_training_data():
    check_allowed("asterisk-core-sounds-fr-wav")
    check_allowed("asterisk-core-sounds-en-wav")


def test_a_warm_up_raises_the_rate_over_its_first_steps(monkeypatch):
    from RVC import lite_train

    rates: list[float] = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    cfg = LiteConfig.tiny()
    cfg.content_dims = 8
    cfg.adversarial = False
    lite_train.train(_set(2.0, 8, 0), cfg, max_steps=6, device="cpu", report_every=100, base=_base(cfg), warmup_steps=4)
    assert rates == pytest.approx([cfg.learning_rate * f for f in (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)])
