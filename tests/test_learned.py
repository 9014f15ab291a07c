"""toyworld-learned: training data, the Wan pipeline, resumable training, export, loading, generating."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("diffusers")

from syncos import api  # noqa: E402
from syncos.backends import load_backend  # noqa: E402
from syncos.backends.toyworld import ToyWorldBackend, vocabulary  # noqa: E402
from syncos.backends.toyworld import world as W  # noqa: E402
from syncos.cli import main  # noqa: E402
from syncos.errors import UserError  # noqa: E402
from syncos.learned import pipeline as L  # noqa: E402
from syncos.learned.data import ClipSampler  # noqa: E402
from syncos.learned.train import main as train  # noqa: E402
from syncos.samplers import SAMPLERS  # noqa: E402

PEAKED = W.Prior.parse({"lighting": {"day": 0.9, "night": 0.1}})


def test_latent_is_the_vae_patchify_and_inverts_exactly():
    x = torch.rand(2, 3, 12, 32, 32)
    z = L.to_latent(x)
    assert z.shape == (2, 12, 12, 16, 16)
    torch.testing.assert_close(L.from_latent(z), x, rtol=0, atol=1e-6)


def test_tokenizer_knows_every_toyworld_word():
    tok = L.make_tokenizer()
    unk = tok.convert_tokens_to_ids("<unk>")
    for words in vocabulary().values():
        for phrase in words:
            assert unk not in tok(phrase.upper()).input_ids, phrase
    assert tok("a red ball. night falls").input_ids[-3:] != [unk] * 3


def test_clips_lie_in_their_prompt_s_mixture():
    """The exact denoiser at low noise returns the clip itself only if the clip is one of its components."""
    sampler = ClipSampler(prior=PEAKED, p_boundary=0.0, p_empty=0.0)
    exact = ToyWorldBackend(prediction="flow", prior=PEAKED)
    g = np.random.default_rng(0)
    t = torch.tensor([30.0])
    alpha, sigma = (float(c) for c in exact.schedule.coefficients(t))
    for _ in range(6):
        text, clip = sampler.sample(g)
        assert text and W.parse_prompt(text)
        x0 = torch.from_numpy(clip - 0.5)[None]
        xt = alpha * x0 + sigma * torch.from_numpy(g.normal(size=x0.shape))
        err = (exact.posterior(xt, t, exact.encode([text])).x0 - x0).abs()
        assert float(err.mean()) < 0.03 and float(err.max()) < 0.2, text


class Fixed(ClipSampler):
    def prompts(self, g):
        return "a red square on the grass", "it rests at night", "it rests by day"


def test_boundary_clips_splice_two_events_under_the_majority_s_text():
    sampler = Fixed(p_boundary=1.0, p_empty=0.0)
    g = np.random.default_rng(1)
    cuts = set()
    for _ in range(8):
        text, clip = sampler.sample(g)
        night = clip[:, :, 0, :].mean(axis=(0, 2)) < 0.4  # sky brightness per frame
        cut = int(night.sum())
        assert night[:cut].all() and not night[cut:].any() and 0 < cut < W.CHUNK_LENGTH
        assert text == (
            "a red square on the grass. it rests at night"
            if cut * 2 >= W.CHUNK_LENGTH
            else "a red square on the grass. it rests by day"
        )
        cuts.add(cut)
    assert len(cuts) > 2


def test_prompt_stream_is_seeded_and_drops_some_text():
    texts = [ClipSampler().sample(np.random.default_rng(s))[0] for s in range(200)]
    assert texts == [ClipSampler().sample(np.random.default_rng(s))[0] for s in range(200)]
    assert 5 < texts.count("") < 50
    for text in texts:
        if text:
            W.parse_prompt(text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A run trained for 1 (VAE) and 3 (transformer) steps, resumed midway, exported."""
    run = tmp_path_factory.mktemp("run")
    common = ["--out", str(run), "--batch", "2", "--every", "1"]
    train([*common, "--vae-steps", "1", "--steps", "2"])  # --part all: the VAE, then the transformer
    train([*common, "--part", "transformer", "--steps", "3"])
    out = tmp_path_factory.mktemp("export") / "toyworld-learned"
    train(["--out", str(run), "--export", str(out)])
    return run, out


def test_resumed_training_is_the_uninterrupted_one(folder, tmp_path):
    run, _ = folder
    train(["--out", str(tmp_path), "--part", "transformer", "--batch", "2", "--every", "3", "--steps", "3"])
    resumed, straight = (
        load_file(str(run / "transformer.safetensors")),
        load_file(str(tmp_path / "transformer.safetensors")),
    )
    assert resumed.keys() == straight.keys() and any(k.startswith("ema.") for k in resumed)
    for k in resumed:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0)
    losses = lambda p: [line.split(",")[1] for line in (p / "loss_transformer.csv").read_text().splitlines()]  # noqa: E731
    assert losses(run) == losses(tmp_path)
    with pytest.raises(SystemExit, match="different configuration"):
        train(["--out", str(run), "--part", "transformer", "--batch", "4", "--steps", "4"])


def test_drawing_ahead_in_workers_and_a_time_limit_change_nothing_but_where_it_stops(folder, tmp_path):
    """--workers draws batch i from (seed, i) in another process: the weights are the in-line run's; a
    run stopped by --minutes checkpoints the step it reached and a rerun resumes it to the same end.
    An --arch override is recorded and exported (the folder's transformer has the extra layer)."""
    run, _ = folder
    common = ["--part", "transformer", "--batch", "2", "--every", "3"]
    train(["--out", str(tmp_path / "w"), *common, "--steps", "3", "--workers", "2"])
    stopped = tmp_path / "stopped"
    train(["--out", str(stopped), *common, "--steps", "3", "--minutes", "0"])  # stops after one step
    assert load_file(str(stopped / "transformer_adam.safetensors"))["step"].item() == 1
    train(["--out", str(stopped), *common, "--steps", "3"])
    reference = load_file(str(run / "transformer.safetensors"))
    for other in (tmp_path / "w", stopped):
        got = load_file(str(other / "transformer.safetensors"))
        for k in reference:
            torch.testing.assert_close(got[k], reference[k], rtol=0, atol=0)
    arch = tmp_path / "arch"
    layers = L.TRANSFORMER["num_layers"] + 1
    train(["--out", str(arch), *common, "--steps", "1", "--arch", json.dumps({"num_layers": layers})])
    (arch / "vae.safetensors").write_bytes((run / "vae.safetensors").read_bytes())
    train(["--out", str(arch), "--export", str(tmp_path / "arch-out")])
    config = json.loads((tmp_path / "arch-out" / "transformer" / "config.json").read_text())
    assert config["num_layers"] == layers


def exported_weights(out) -> dict[str, torch.Tensor]:
    """The transformer part's weights in an export folder, named as in a run's checkpoint."""
    from transformers import UMT5EncoderModel

    from diffusers import WanTransformer3DModel

    return {
        f"{name}.{k}": v
        for name, cls in (("transformer", WanTransformer3DModel), ("text_encoder", UMT5EncoderModel))
        for k, v in cls.from_pretrained(str(out / name)).state_dict().items()
    }


def test_a_warm_start_begins_at_the_export_and_resumes_exactly(folder, tmp_path, monkeypatch):
    """--init-from: step 0 is the export's weights (raw = EMA); a plain resume of the warm-started run
    equals the uninterrupted warm-started run bit for bit (the folder is not read again)."""
    run, out = folder
    common = ["--part", "transformer", "--batch", "2", "--every", "1"]
    warm, straight = tmp_path / "warm", tmp_path / "straight"
    train(["--out", str(warm), *common, "--steps", "0", "--init-from", str(out)])
    start, exported = load_file(str(warm / "transformer.safetensors")), exported_weights(out)
    assert {k for k in start if not k.startswith("ema.")} == exported.keys()
    for k, v in exported.items():
        assert torch.equal(start[k], v) and torch.equal(start[f"ema.{k}"], v), k
    record = json.loads((warm / "config_transformer.json").read_text())["init_from"]
    assert record["folder"] == str(out.resolve()) and record["steps"] == 3 and len(record["sha256"]) == 64

    train(["--out", str(warm), *common, "--steps", "2"])  # a plain resume
    train(["--out", str(straight), *common, "--steps", "2", "--init-from", str(out)])
    # stopped after its config was written and before step 0 was: a plain rerun warm-starts again
    lost = tmp_path / "lost"
    train(["--out", str(lost), *common, "--steps", "0", "--init-from", str(out)])
    for f in ("transformer.safetensors", "transformer_adam.safetensors"):
        (lost / f).unlink()
    train(["--out", str(lost), *common, "--steps", "2"])
    resumed, uninterrupted, restarted = (
        load_file(str(p / "transformer.safetensors")) for p in (warm, straight, lost)
    )
    assert resumed.keys() == uninterrupted.keys() == restarted.keys()
    for k in resumed:
        assert torch.equal(resumed[k], uninterrupted[k]) and torch.equal(restarted[k], uninterrupted[k]), k
    name = "transformer.proj_out.weight"  # training proceeded from the export
    assert not torch.equal(resumed[name], exported[name])
    assert len((warm / "loss_transformer.csv").read_text().splitlines()) == 3  # header, steps 1 and 2

    with pytest.raises(SystemExit, match="exists; use another --out, or resume it without --init-from"):
        train(["--out", str(warm), *common, "--steps", "3", "--init-from", str(out)])
    with pytest.raises(SystemExit, match="not an exported toyworld-learned folder"):
        train(["--out", str(tmp_path / "a"), *common, "--steps", "1", "--init-from", str(run)])
    monkeypatch.setitem(L.TRANSFORMER, "num_layers", L.TRANSFORMER["num_layers"] + 1)
    with pytest.raises(SystemExit, match="its transformer is not this run's architecture"):
        train(["--out", str(tmp_path / "b"), *common, "--steps", "1", "--init-from", str(out)])


def test_export_is_a_wan_pipeline_folder_with_the_ema_weights(folder):
    run, out = folder
    info = json.loads((out / L.MARKER).read_text())
    assert info["steps"] == {"transformer": 3, "vae": 1} and info["prior"] == {
        "lighting": {"day": 0.9, "night": 0.1}
    }
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    state = load_file(str(run / "transformer.safetensors"))
    from diffusers import WanTransformer3DModel

    loaded = WanTransformer3DModel.from_pretrained(str(out / "transformer")).state_dict()
    name = "proj_out.weight"
    torch.testing.assert_close(loaded[name], state[f"ema.transformer.{name}"])
    assert not torch.equal(state[f"ema.transformer.{name}"], state[f"transformer.{name}"])


@pytest.mark.parametrize("method", list(SAMPLERS))
def test_every_method_runs_on_the_folder_with_toyworld_metrics(folder, method, tmp_path):
    _, out = folder
    scenario = {
        "model": str(out),
        "global_prompt": "a red ball on green grass",
        "events": [{"prompt": "the ball jumps", "frames": 12}, {"prompt": "night falls", "frames": 8}],
        "sampler": {"method": method, "steps": 2, "guidance_scale": 4.0},
    }
    gen = api.generate(scenario)
    assert gen.backend.chunk_length == W.CHUNK_LENGTH and (gen.backend.height, gen.backend.width) == (32, 32)
    record = api.save(gen, tmp_path / "out")
    assert record["model"]["pipeline"] == "WanPipeline" and record["frames"] == 20
    assert set(record["metrics"]) >= {"clean", "global_fidelity", "subject_consistency"}


def test_settings_the_model_cannot_honour_are_one_line_errors(folder, tmp_path, capsys):
    _, out = folder
    with pytest.raises(UserError, match="renders 32x32 frames at 8 fps; height must be 32"):
        load_backend(str(out), height=64)
    scenario = tmp_path / "s.json"
    scenario.write_text(
        json.dumps({"model": str(out), "global_prompt": "a ball", "events": [{"prompt": "x", "frames": 12}]})
    )
    assert main(["generate", str(scenario), "-o", str(tmp_path / "o"), "--quiet", "--set", "fps=16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fps must be 8" in err and len(err.splitlines()) == 1


def test_the_shipped_model_by_name(tmp_path):
    if not (L.SHIPPED / L.MARKER).exists():
        with pytest.raises(UserError, match="no shipped weights"):
            load_backend(L.NAME)
        pytest.skip("no shipped toyworld-learned export in this checkout")
    scenario = tmp_path / "s.json"
    events = [{"prompt": "the ball jumps", "frames": 12}, {"prompt": "night falls", "frames": 12}]
    scenario.write_text(json.dumps({"global_prompt": "a red ball on green grass", "events": events}))
    args = ["generate", str(scenario), "--model", L.NAME, "--steps", "2", "-o", str(tmp_path / "o"), "-q"]
    assert main(args) == 0
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["model"]["pipeline"] == "WanPipeline" and record["scenario"]["model"] == L.NAME
    assert record["metrics"]["clean"] >= 0
