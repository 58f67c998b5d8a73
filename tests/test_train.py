"""Demo training end to end on a tiny configuration: losses, checkpoint, exact resume, bundle."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.api import EngineError, GenerateRequest
from engine.demo.bundle import load_bundle, load_demo_components
from engine.demo.bundle_write import BUNDLE, bundle_meta, export_bundle
from engine.demo.captions import parse_caption, strip_prefix
from engine.demo.codec import CodecConfig, DemoCodec
from engine.demo.data import EDIT_FRAMES, batch_rng, make_batch, step_data
from engine.demo.text import TextConfig, grammar_vocab
from engine.demo.train.cli import main, run
from engine.demo.train.codec import (
    OBJECT_MARGIN,
    decoder_error,
    denoised_decoder_loss,
    finetune_decoder,
    object_weights,
)
from engine.demo.train.commands import data_changes
from engine.demo.train.config import TrainConfig, check_autocast, frames_tensor, lr_at
from engine.demo.train.flow import FlowTrainer, default_flow, score_target
from engine.demo.world import TRAIN_FRAMES, Scene, ShapeObject, render

pytestmark = pytest.mark.usefixtures("one_thread")


TRAIN_CFG = TrainConfig(steps=4, seed=3, batch=2, lr=2e-3, warmup=2, denoiser_lr=2e-3)


def tiny_meta(train_cfg: TrainConfig = TRAIN_CFG) -> tuple[dict, DemoCodec]:
    torch.manual_seed(0)
    codec = DemoCodec(CodecConfig(channels=4, width=16, mid=8, blocks=1)).eval()
    text = TextConfig(vocab=grammar_vocab(), dim=16, layers=1, heads=2)
    flow = default_flow(
        4,
        16,
        text.max_tokens,
        channels=32,
        top_block_channels=32,
        layers_per_block=(1, 1, 1, 1),
        head_dim=16,
        denoiser_layers=1,
    )
    return bundle_meta(flow, codec.cfg, text, train_cfg.noise_std), codec


def trainer(train_cfg: TrainConfig = TRAIN_CFG) -> FlowTrainer:
    meta, codec = tiny_meta(train_cfg)
    return FlowTrainer(meta, train_cfg, codec)


def test_batches_are_deterministic_and_cover_every_task():
    a, b = make_batch(batch_rng(0, 7), 3), make_batch(batch_rng(0, 7), 3)
    assert a.texts == b.texts and np.array_equal(a.frames, b.frames)
    lengths = {"t2v": TRAIN_FRAMES, "extend": TRAIN_FRAMES, "v2v": 2 * EDIT_FRAMES}
    prefixes = {"t2v": "a ", "extend": "(extend) a ", "v2v": "(v2v) "}
    for task, length in lengths.items():
        batch = make_batch(np.random.default_rng(1), 2, task)
        assert batch.frames.shape == (2, length, 48, 64, 3) and batch.frames.dtype == np.uint8
        assert all(t.startswith(prefixes[task]) for t in batch.texts)


def test_two_objects_sets_the_share_of_two_object_scenes(tmp_path):
    """--two-objects P: each training scene holds two objects with chance P (the world's own draw,
    one or two alike, when unset); the data stays a function of (seed, step)."""

    def objects(two: float | None, task: str) -> list[int]:
        batch = make_batch(np.random.default_rng(5), 200, task, two_objects=two)
        return [len(parse_caption(strip_prefix(t)[1]).objects) for t in batch.texts]

    for task in ("t2v", "extend"):
        assert set(objects(1.0, task)) == {2} and set(objects(0.0, task)) == {1}
        assert 0.65 < np.mean(np.array(objects(0.75, task)) == 2) < 0.85
        assert 0.4 < np.mean(np.array(objects(None, task)) == 2) < 0.6
    frames, texts = step_data(3, 0, 4, 0.0, 0.75)
    again = step_data(3, 0, 4, 0.0, 0.75)
    assert texts == again[1] and np.array_equal(frames, again[0])
    plain = make_batch(batch_rng(0, 7), 3)  # unset: the same draw as before the option
    assert step_data(7, 0, 3, 0.0)[1] == plain.texts
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path), "--two-objects", "1.5"])


def test_a_resume_names_the_data_settings_it_changes():
    record = dataclasses.asdict(TrainConfig(seed=2, two_objects=0.75))
    assert data_changes(record, TrainConfig(seed=2, two_objects=0.75, lr=1e-5, steps=9)) == []
    assert data_changes(record, TrainConfig(seed=5)) == ["seed 2 -> 5", "two-objects 0.75 -> None"]
    old = {k: v for k, v in record.items() if k != "two_objects"}  # a record from before it
    assert data_changes(old, TrainConfig(seed=2)) == []
    assert data_changes(old, TrainConfig(seed=2, batch=4)) == ["batch 8 -> 4"]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    assert lr_at(0, 100, 1.0, 0.1, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 0.1, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 0.1, 10) == pytest.approx(0.1)
    assert lr_at(55, 100, 1.0, 0.1, 10) == pytest.approx(0.55)


def test_losses_are_finite_and_decrease_on_a_fixed_batch():
    t = trainer(TrainConfig(steps=100, seed=3, batch=2, lr=3e-3, warmup=1, denoiser_lr=3e-3))
    history = [t.train_step(data_step=0) for _ in range(6)]
    nll = [h["nll"] for h in history]
    den = [h["denoise"] for h in history]
    assert all(math.isfinite(v) for v in nll + den)
    assert nll[-1] < nll[0] - 0.05 and all(a > b for a, b in zip(nll[:3], nll[1:4], strict=True))


def test_bf16_autocast_trains_like_float32():
    """--autocast bf16 runs the products in bfloat16 and keeps float32 parameters: the first
    losses match float32 closely and training still lowers the NLL."""
    base = TrainConfig(steps=100, seed=3, batch=2, lr=3e-3, warmup=1, denoiser_lr=3e-3)
    fp32 = trainer(base).train_step(data_step=0)
    t = trainer(dataclasses.replace(base, autocast="bf16"))
    history = [t.train_step(data_step=0) for _ in range(6)]
    assert history[0]["nll"] == pytest.approx(fp32["nll"], abs=0.02)
    assert history[0]["denoise"] == pytest.approx(fp32["denoise"], rel=0.1)
    assert history[-1]["nll"] < history[0]["nll"] - 0.05
    assert all(p.dtype == torch.float32 for p in t.flow.parameters())


def test_bf16_autocast_warns_where_bfloat16_is_slower_than_float32(caplog):
    """A CPU without native bfloat16 emulates it, many times slower: --autocast bf16 measures
    the factor and warns past the limit, naming the fast choice."""
    cpu = torch.device("cpu")
    assert check_autocast(TrainConfig(), cpu) is None  # float32 runs measure nothing
    bf16 = TrainConfig(autocast="bf16")
    with caplog.at_level(logging.WARNING, logger="engine.demo.train"):
        factor = check_autocast(bf16, cpu, limit=math.inf)
        assert factor is not None and factor > 0 and not caplog.records
        assert check_autocast(bf16, cpu, limit=0.0) > 0
    assert len(caplog.records) == 1 and "--autocast none" in caplog.text


def test_denoiser_target_is_the_scaled_flow_score():
    # a fresh flow is the identity (zero-initialised heads): NLL = 0.5 x^2, so -score = x and
    # x - 0.3 * target must be the Tweedie estimate x - noise_std^2 * x
    t = trainer()
    with torch.no_grad():
        for block in t.flow.blocks:
            block.proj_out.bias.zero_()
    x = torch.randn(2, 3, 4, 6, 8, requires_grad=True)
    z, _, logdets = t.flow(x, torch.zeros(2, 24, 16))
    target = score_target(t.flow.loss(z, logdets), x, noise_std=0.5)
    torch.testing.assert_close(x.detach() - 0.3 * target, x.detach() * (1 - 0.25))


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = trainer()
    straight.train(4)
    first = trainer()
    first.train(2, tmp_path, save_every_s=1e9)
    resumed = trainer()
    resumed.resume(tmp_path)
    assert resumed.step == 2
    resumed.train(4)
    for (name, a), b in zip(straight.tensors().items(), resumed.tensors().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_stop_after_ends_a_run_checkpointed_and_a_resume_finishes_it(tmp_path, capsys):
    straight = trainer()
    straight.train(4)
    cut = trainer()
    history = cut.train(4, tmp_path, save_every_s=1e9, stop_after_s=0.0)
    assert len(history) == 1 and cut.step == 1  # the first step past the time ends the run
    resumed = trainer()
    resumed.resume(tmp_path)  # the stop saved its checkpoint though none was due
    assert resumed.step == 1
    resumed.train(4)
    for (name, a), b in zip(straight.tensors().items(), resumed.tensors().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    for bad in ("-1", "nan"):
        with pytest.raises(SystemExit):
            main(["train", "--out", "unused", "--stop-after", bad])
        assert "--stop-after must be seconds" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU trains on it")
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path):
    args = ["train", "--out", str(tmp_path / "run"), "--device", "cuda", "--steps", "1"]
    with pytest.raises(EngineError, match="--device cuda: this torch .* use --device cpu"):
        main(args)
    assert run(args) == 2 and not (tmp_path / "run").exists()


def test_checkpoint_is_a_loadable_bundle(tmp_path):
    t = trainer()
    t.train(1, tmp_path)
    meta = json.loads((tmp_path / f"{BUNDLE}.json").read_text())
    assert meta["training"]["step"] == 1 and meta["fps"] == 16 and meta["train_frames"] == 17
    assert {"flow", "codec", "text", "noise_std", "width", "height", "sampling"} <= set(meta)
    weights = tmp_path / f"{BUNDLE}.safetensors"
    codec, text = load_demo_components(tmp_path / f"{BUNDLE}.json", weights)
    torch.testing.assert_close(codec.decoder.conv_out.weight, t.codec.decoder.conv_out.weight)
    export_bundle(tmp_path, tmp_path / "ship")  # float16 weights, as shipped in resources/
    pipe = load_bundle(tmp_path / "ship" / f"{BUNDLE}.json", device="cpu")
    assert pipe.model.top.proj_in.weight.dtype == torch.float32
    request = GenerateRequest("a red circle moves left on a black background", frames=3, seed=1)
    frames = np.concatenate([e.frames for e in pipe.generate(request)])
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert pipe.settings.temperature == 1.0
    export_bundle(tmp_path, tmp_path / "cool", temperature=0.5)  # a default sampling temperature
    cool = load_bundle(tmp_path / "cool" / f"{BUNDLE}.json", device="cpu")
    assert cool.settings.temperature == 0.5
    colder = np.concatenate([e.frames for e in cool.generate(request)])
    assert colder.shape == frames.shape and not np.array_equal(colder, frames)
    assert cool.info.temperature == 0.5 and pipe.info.temperature == 1.0
    # a request's own temperature overrides the bundle's default; None keeps it
    same = dataclasses.replace(request, temperature=0.5)
    assert np.array_equal(np.concatenate([e.frames for e in pipe.generate(same)]), colder)
    assert np.array_equal(
        np.concatenate(
            [e.frames for e in cool.generate(dataclasses.replace(request, temperature=1.0))]
        ),
        frames,
    )
    with pytest.raises(EngineError, match="temperature must be a positive number"):
        dataclasses.replace(request, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        export_bundle(tmp_path, tmp_path / "bad", temperature=0.0)
    meta = json.loads((tmp_path / "cool" / f"{BUNDLE}.json").read_text())
    for bad in (-1.0, float("inf"), float("nan")):  # JSON's Infinity / NaN parse as floats
        meta["sampling"]["temperature"] = bad
        (tmp_path / "cool" / f"{BUNDLE}.json").write_text(json.dumps(meta))
        with pytest.raises(EngineError, match="bad sampling settings"):
            load_bundle(tmp_path / "cool" / f"{BUNDLE}.json", device="cpu")
    with pytest.raises(ValueError, match="temperature must be a number from 0 to 10, got inf"):
        export_bundle(tmp_path, tmp_path / "bad", temperature=float("inf"))


def test_command_line_trains_codec_and_flow_then_resumes(tmp_path, monkeypatch, caplog):
    import engine.demo.train.commands as commands

    def tiny_flow(in_channels, txt_dim, max_tokens, **changes):
        return default_flow(
            in_channels,
            txt_dim,
            max_tokens,
            channels=32,
            top_block_channels=32,
            layers_per_block=(1, 1, 1, 1),
            head_dim=16,
            denoiser_layers=1,
        )

    monkeypatch.setattr(commands, "default_flow", tiny_flow)
    monkeypatch.setattr(
        commands,
        "CodecConfig",
        lambda channels: CodecConfig(channels=channels, width=16, mid=8, blocks=1),
    )
    out = ["--out", str(tmp_path)]
    codec = ["--codec-steps", "2", "--codec-channels", "4", "--codec-eval-frames", "32"]
    codec += ["--threads", "1"]
    main(["train", *out, "--steps", "2", "--batch", "1", *codec])
    assert (tmp_path / "codec.safetensors").exists()
    with caplog.at_level(logging.WARNING, logger="engine.demo.train"):
        main(["train", *out, "--steps", "3", "--batch", "1", *codec, "--resume"])  # no warning
    assert not caplog.records
    meta = json.loads((tmp_path / f"{BUNDLE}.json").read_text())
    assert meta["training"]["step"] == 3 and meta["codec"]["channels"] == 4
    before = load_file(str(tmp_path / "codec.safetensors"))
    finetune = ["finetune-decoder", *out, "--steps", "2", *codec]
    main(finetune)  # the encoder and its normalisation stay as they were
    after = load_file(str(tmp_path / "codec.safetensors"))
    assert json.loads((tmp_path / "codec.json").read_text()) == meta["codec"]
    for name, value in before.items():
        same = torch.equal(value, after[name])
        assert same if name.startswith("encoder.") else True, name
    assert not torch.equal(before["decoder.conv_out.weight"], after["decoder.conv_out.weight"])
    # the bundle now holds the fine-tuned codec, and still loads as a pipeline
    bundle = load_file(str(tmp_path / f"{BUNDLE}.safetensors"))
    for name, value in after.items():
        assert torch.equal(bundle[f"codec.{name}"], value), name
    assert json.loads((tmp_path / f"{BUNDLE}.json").read_text())["training"]["decoder_finetune"]
    load_bundle(tmp_path / f"{BUNDLE}.json", device="cpu")
    # then on what the trained flow's denoiser makes of noisy latents
    main([*finetune, "--input", "denoised"])
    again = load_file(str(tmp_path / "codec.safetensors"))
    assert not torch.equal(after["decoder.conv_out.weight"], again["decoder.conv_out.weight"])
    assert torch.equal(after["encoder.conv_out.weight"], again["encoder.conv_out.weight"])
    bundle = load_file(str(tmp_path / f"{BUNDLE}.safetensors"))
    assert torch.equal(bundle["codec.decoder.conv_out.weight"], again["decoder.conv_out.weight"])
    empty = [
        "finetune-decoder",
        "--out",
        str(tmp_path / "empty"),
        "--codec",
        str(tmp_path / "codec.safetensors"),
        "--steps",
        "2",
        "--input",
        "denoised",
        "--threads",
        "1",
    ]
    with pytest.raises(ValueError, match="no trained flow"):
        main(empty)
    assert run(empty) == 2  # the command line: a one-line message, status 2
    # training on after the fine-tune keeps its record and that of each earlier run
    main(["train", *out, "--steps", "4", "--batch", "1", *codec, "--resume", "--autocast", "bf16"])
    record = json.loads((tmp_path / f"{BUNDLE}.json").read_text())["training"]
    assert record["step"] == 4 and record["autocast"] == "bf16"
    fine_tune = {"steps": 2, "sharpen": 0, "lr": TrainConfig.codec_lr, "object_weight": 0.0}
    assert record["decoder_finetune"] == [
        {**fine_tune, "input": "noisy", "noise": TrainConfig.codec_noise, "seed": 0},
        {**fine_tune, "input": "denoised", "noise": TrainConfig.noise_std, "seed": 0},
    ]
    assert record["runs"] == [{"until": 2, "autocast": "none"}, {"until": 3, "autocast": "none"}]
    # export: float16 weights and, where given, the default sampling temperature
    ship = tmp_path / "ship"
    main(["export", str(tmp_path), "--out", str(ship), "--temperature", "0.5"])
    assert load_bundle(ship / f"{BUNDLE}.json", device="cpu").settings.temperature == 0.5
    assert run(["export", str(tmp_path), "--out", str(tmp_path / "bad"), "--temperature", "0"]) == 2
    assert not (tmp_path / "bad").exists()


def test_decoder_learns_to_decode_the_denoisers_output():
    meta, codec = tiny_meta()
    trainer = FlowTrainer(meta, TRAIN_CFG, codec)
    trainer.train(2)
    flow, text = trainer.flow.eval(), trainer.text.eval()
    held_out = make_batch(batch_rng(99, 0), 2)

    def loss() -> float:
        with torch.no_grad():
            return denoised_decoder_loss(
                codec,
                flow,
                text,
                held_out.frames,
                held_out.texts,
                TRAIN_CFG.noise_std,
                torch.Generator().manual_seed(5),
            ).item()

    before, encoder = loss(), codec.encoder.conv_out.weight.clone()
    flow_state = {k: v.clone() for k, v in flow.state_dict().items()}
    train_cfg = dataclasses.replace(TRAIN_CFG, codec_batch=TRAIN_FRAMES, codec_lr=1e-2)
    finetune_decoder(codec, 80, train_cfg, denoiser=(flow, text))
    assert loss() < 0.5 * before
    assert torch.equal(codec.encoder.conv_out.weight, encoder)  # the latents stay valid
    assert all(torch.equal(v, flow.state_dict()[k]) for k, v in flow_state.items())


def test_init_starts_a_new_run_from_a_shipped_bundle(tmp_path):
    source = trainer()
    source.train(2, tmp_path / "a")
    export_bundle(tmp_path / "a", tmp_path / "ship", temperature=0.5)  # float16, as shipped
    shipped = tmp_path / "ship" / f"{BUNDLE}.json"
    # the warm start holds exactly the shipped weights (float16 read back as float32)
    meta, codec = tiny_meta()
    warm = FlowTrainer(meta, TRAIN_CFG, codec)
    warm.load_weights(load_file(str(shipped.with_suffix(".safetensors"))))
    for name, value in source.flow.state_dict().items():
        torch.testing.assert_close(warm.flow.state_dict()[name], value.half().float(), msg=name)
    assert warm.step == 0
    init = ["--init", str(shipped)]
    rest = ["--batch", "1", "--threads", "1", "--lr", "1e-3", "--warmup", "1", "--seed", "4"]
    args = ["train", "--out", str(tmp_path / "b"), *init, "--steps", "2", *rest]
    # a run stopped by time after its first step of 3, and resumed: checkpointed each time
    stopped = ["train", "--out", str(tmp_path / "s"), *init, "--steps", "3", *rest]
    stopped += ["--stop-after", "0"]
    main(stopped)
    record = json.loads((tmp_path / "s" / f"{BUNDLE}.json").read_text())["training"]
    assert record["step"] == 1 and record["steps"] == 3
    main([*stopped, "--resume"])
    record = json.loads((tmp_path / "s" / f"{BUNDLE}.json").read_text())["training"]
    assert record["step"] == 2 and record["init"]["from"] == str(shipped)
    main(args)
    out = tmp_path / "b"
    meta = json.loads((out / f"{BUNDLE}.json").read_text())
    record = meta["training"]
    assert record["step"] == 2 and record["seed"] == 4 and record["warmup"] == 1
    assert record["init"]["from"] == str(shipped) and record["init"]["step"] == 2
    assert meta["sampling"]["temperature"] == 0.5 and "weights_dtype" not in meta
    trained = load_file(str(out / f"{BUNDLE}.safetensors"))
    start = {k: v.clone() for k, v in load_file(str(shipped.with_suffix(".safetensors"))).items()}
    assert all(torch.equal(trained[k].half(), start[k]) for k in start if k.startswith("codec."))
    assert not torch.equal(
        trained["flow.blocks.3.proj_in.weight"].half(), start["flow.blocks.3.proj_in.weight"]
    )
    assert (out / "codec.safetensors").exists()  # so a decoder fine-tune of OUT finds its codec
    load_bundle(out / f"{BUNDLE}.json", device="cpu")
    with pytest.raises(ValueError, match="already holds a run"):
        main(args)  # a second --init into the same folder would replace the run
    # a run cut before its first checkpoint holds only its codec: --resume refuses it rather
    # than train a flow from scratch in its place
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("codec.safetensors", "codec.json"):
        (cut / name).write_bytes((out / name).read_bytes())
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        main(["train", "--out", str(cut), *init, "--steps", "2", *rest, "--resume"])
    assert sorted(p.name for p in cut.iterdir()) == ["codec.json", "codec.safetensors"]
    # resuming it keeps where it started from
    main(["train", "--out", str(out), *init, "--steps", "3", *rest, "--resume"])
    record = json.loads((out / f"{BUNDLE}.json").read_text())["training"]
    assert record["step"] == 3 and record["init"]["from"] == str(shipped)
    # a truncated or foreign bundle is a one-line error, and the new run's folder stays empty
    weights = shipped.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])
    bad = ["train", "--out", str(tmp_path / "c"), *init, "--steps", "1", "--threads", "1"]
    with pytest.raises(ValueError, match="cannot read the bundle's weights"):
        main(bad)
    assert run(bad) == 2 and not (tmp_path / "c").exists()
    wrong = {k: v for k, v in start.items() if k != "flow.blocks.3.proj_in.weight"}
    save_file(wrong, str(weights))  # a tensor missing: named, not a traceback
    with pytest.raises(ValueError, match="do not fit its configuration"):
        main(bad)
    (tmp_path / "other.json").write_text(json.dumps({"flow": {}}))
    with pytest.raises(ValueError, match="not a demo bundle"):
        main([*bad[:4], str(tmp_path / "other.json"), *bad[5:]])


def test_average_makes_the_mean_of_bundles_of_one_model(tmp_path):
    bundles = []
    for seed in (3, 5):
        source = trainer(dataclasses.replace(TRAIN_CFG, seed=seed))
        source.train(2, tmp_path / f"run{seed}")
        export_bundle(tmp_path / f"run{seed}", tmp_path / f"ship{seed}", temperature=0.5)
        bundles.append(tmp_path / f"ship{seed}" / f"{BUNDLE}.json")
    a, b = (load_file(str(p.with_suffix(".safetensors"))) for p in bundles)
    assert not torch.equal(a["flow.blocks.3.proj_in.weight"], b["flow.blocks.3.proj_in.weight"])
    out = tmp_path / "avg"
    main(["average", *map(str, bundles), "--out", str(out)])
    mean = load_file(str(out / f"{BUNDLE}.safetensors"))
    assert mean.keys() == a.keys()
    for name, value in mean.items():
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value, (a[name].float() + b[name].float()) / 2, msg=name)
    meta = json.loads((out / f"{BUNDLE}.json").read_text())
    record = meta["training"]
    assert [r["from"] for r in record["average"]] == list(map(str, bundles))
    assert [r["record"]["seed"] for r in record["average"]] == [3, 5] and record["step"] == 2
    assert meta["sampling"]["temperature"] == 0.5 and "weights_dtype" not in meta
    load_bundle(out / f"{BUNDLE}.json", device="cpu")
    main(["export", str(out), "--out", str(tmp_path / "ship"), "--temperature", "0.5"])
    shipped = load_file(str(tmp_path / "ship" / f"{BUNDLE}.safetensors"))
    assert all(torch.equal(shipped[k], mean[k].half()) for k in mean)
    # what cannot be averaged is a one-line error, and nothing is written
    with pytest.raises(ValueError, match="already holds"):
        main(["average", *map(str, bundles), "--out", str(out)])
    with pytest.raises(ValueError, match="two bundles or more"):
        main(["average", str(bundles[0]), "--out", str(tmp_path / "one")])
    other = json.loads(bundles[1].read_text())
    other["sampling"]["temperature"] = 0.8
    bundles[1].write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"not the same model .*\(sampling\)"):
        main(["average", *map(str, bundles), "--out", str(tmp_path / "c")])
    other["sampling"]["temperature"] = 0.5
    bundles[1].write_text(json.dumps(other))
    weights = bundles[1].with_suffix(".safetensors")
    save_file({k: v for k, v in b.items() if k != "flow.blocks.3.proj_in.weight"}, str(weights))
    with pytest.raises(ValueError, match="tensors differ"):
        main(["average", *map(str, bundles), "--out", str(tmp_path / "c")])
    weights.write_bytes(weights.read_bytes()[:1000])
    bad = ["average", *map(str, bundles), "--out", str(tmp_path / "c")]
    with pytest.raises(ValueError, match="^average .*cannot read the bundle's weights"):
        main(bad)
    assert run(bad) == 2 and not (tmp_path / "c").exists()


def test_workers_render_the_same_run_ahead_of_the_trainer():
    alone = trainer()
    alone.train(3)
    helped = trainer()
    helped.train(3, workers=2)  # spawned processes render steps 0..2 while it trains
    assert helped.prefetched == 3 and helped.prefetch is None  # every step's; the workers gone
    for (name, a), b in zip(alone.tensors().items(), helped.tensors().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_object_weights_cover_objects_and_their_margin():
    small = ShapeObject("triangle", "red", "small", "stays still", 20.0, 20.0)
    frame = render(Scene("gray", (small,)), 1)[0]
    x = frames_tensor(frame[None])
    assert object_weights(x, 0.0) is None
    w = object_weights(x, 10.0)[0, 0].numpy()
    on = (frame != frame[0, 0]).any(-1)
    assert on.sum() > 10 and (w[on] == 11).all()
    ys, xs = np.nonzero(on)
    top, apex = ys.min(), xs[ys == ys.min()][0]
    assert w[top - OBJECT_MARGIN, apex] == 11  # the margin, where a wrong shape would show
    assert w[top - OBJECT_MARGIN - 1, apex] == 1
    assert (w == 11).sum() < 0.1 * w.size  # the background far away keeps weight 1
    # the loss: the error on the object counts 11 times, the background's once
    err = torch.zeros_like(x)
    err[..., 0, 0] = 0.5  # a background pixel
    assert decoder_error(x + err, x, 10.0) == pytest.approx(3 * 0.25 / x.numel())
    err = torch.zeros_like(x)
    err[0, :, ys[0], xs[0]] = 0.5  # an object pixel, all three channels
    assert decoder_error(x + err, x, 10.0) == pytest.approx(11 * 3 * 0.25 / x.numel())
    assert decoder_error(x + err, x, 0.0) == pytest.approx(3 * 0.25 / x.numel())


def test_init_fine_tunes_a_copy_of_a_shipped_bundles_decoder(tmp_path):
    source = trainer()
    source.train(2, tmp_path / "a")
    export_bundle(tmp_path / "a", tmp_path / "ship", temperature=0.5)
    shipped = tmp_path / "ship" / f"{BUNDLE}.json"
    start = load_file(str(shipped.with_suffix(".safetensors")))
    out = tmp_path / "b"
    rest = ["--steps", "2", "--threads", "1"]
    args = ["finetune-decoder", "--out", str(out), "--init", str(shipped), *rest]
    main([*args, "--object-weight", "10", "--codec-lr", "1e-3", "--seed", "3"])
    tuned = load_file(str(out / f"{BUNDLE}.safetensors"))
    assert set(tuned) == set(start)
    for name, value in start.items():  # only the decoder changed
        same = torch.equal(tuned[name].half(), value)
        assert same != name.startswith("codec.decoder."), name
    meta = json.loads((out / f"{BUNDLE}.json").read_text())
    record = meta["training"]
    assert record["step"] == 2 and record["seed"] == TRAIN_CFG.seed  # the flow's record, kept
    assert record["decoder_finetune"] == [
        {"steps": 2, "sharpen": 0, "input": "noisy", "lr": 1e-3, "noise": 0.1}
        | {"object_weight": 10.0, "seed": 3}
    ]
    assert meta["sampling"]["temperature"] == 0.5
    assert load_bundle(out / f"{BUNDLE}.json", device="cpu").settings.temperature == 0.5
    with pytest.raises(ValueError, match="already holds a run or a bundle"):
        main(args)  # it would replace the fine-tuned bundle
    none = ["--init", str(tmp_path / "none.json")]
    assert run(["finetune-decoder", "--out", str(tmp_path / "c"), *none, *rest]) == 2
    assert not (tmp_path / "c" / f"{BUNDLE}.json").exists()


def test_ema_bundle_holds_the_moving_average_and_resumes_exactly(tmp_path, caplog):
    ema_cfg = dataclasses.replace(TRAIN_CFG, ema=0.6)  # the mean of steps 1-2, then 0.6
    # by hand: the mean of the weights after each step, until its decay (s-1)/s reaches 0.6
    by_hand = trainer(ema_cfg)
    by_hand.train_cfg = TRAIN_CFG  # the same run without the average: follow its live weights
    average = None
    for _ in range(4):
        by_hand.train_step()
        live = {k: v.clone() for k, v in by_hand.live_tensors().items()}
        if average is None:
            average = live
            continue
        decay = min(0.6, (by_hand.step - 1) / by_hand.step)
        average = {
            k: decay * average[k] + (1 - decay) * v if v.is_floating_point() else v
            for k, v in live.items()
        }
    straight = trainer(ema_cfg)
    straight.train(4, tmp_path / "straight", save_every_s=1e9)
    bundle = load_file(str(tmp_path / "straight" / f"{BUNDLE}.safetensors"))
    moved = 0
    for k, v in average.items():
        torch.testing.assert_close(bundle[k], v, rtol=1e-6, atol=1e-7, msg=k)
        moved += int(not torch.equal(bundle[k], straight.live_tensors()[k]))
    assert moved > 10  # the bundle is the average, not the live weights
    # the codec is the codec; the live weights are the same run's as without the average
    torch.testing.assert_close(
        bundle["codec.decoder.conv_out.weight"], straight.codec.decoder.conv_out.weight
    )
    for k, v in by_hand.live_tensors().items():
        torch.testing.assert_close(straight.live_tensors()[k], v, rtol=0, atol=0, msg=k)
    # stopped after 2 steps and resumed: the same average and the same live weights
    first = trainer(ema_cfg)
    first.train(2, tmp_path / "resumed", save_every_s=1e9)
    resumed = trainer(ema_cfg)
    resumed.resume(tmp_path / "resumed")
    resumed.train(4, tmp_path / "resumed", save_every_s=1e9)
    again = load_file(str(tmp_path / "resumed" / f"{BUNDLE}.safetensors"))
    for k, v in bundle.items():
        torch.testing.assert_close(again[k], v, rtol=0, atol=0, msg=k)
    for k, v in straight.live_tensors().items():
        torch.testing.assert_close(resumed.live_tensors()[k], v, rtol=0, atol=0, msg=k)
    # resumed without --ema: the live weights go on, the average stops (with a warning)
    plain = trainer()
    with caplog.at_level(logging.WARNING, logger="engine.demo.train"):
        plain.resume(tmp_path / "resumed")
    assert "kept a moving average" in caplog.text and plain.ema is None
    for k, v in straight.live_tensors().items():
        torch.testing.assert_close(plain.tensors()[k], v, rtol=0, atol=0, msg=k)
    # the average's bundle loads and generates like any
    pipe = load_bundle(tmp_path / "resumed" / f"{BUNDLE}.json", device="cpu")
    request = GenerateRequest("a red circle moves left on a black background", frames=2, seed=1)
    assert np.concatenate([e.frames for e in pipe.generate(request)]).shape == (2, 48, 64, 3)
    assert (
        json.loads((tmp_path / "resumed" / f"{BUNDLE}.json").read_text())["training"]["ema"] == 0.6
    )


def test_ema_must_be_a_decay_below_one(capsys):
    for bad in ("1", "-0.1", "1.5"):
        with pytest.raises(SystemExit):
            main(["train", "--out", "unused", "--ema", bad])
        assert "--ema must be a decay" in capsys.readouterr().err


def test_drop_to_task_keeps_the_task_prefix_of_some_dropped_texts(tmp_path):
    """--drop-to-task P: a dropped text with a task prefix becomes the prefix alone with chance P
    (the unconditional text of guided edits), else ""; a caption without one becomes "". Unset,
    the data is the same as before the option."""
    seen: dict[str, int] = {}
    for step in range(400):
        full = step_data(step, 0, 8, 0.0)[1]
        dropped = step_data(step, 0, 8, 1.0, drop_to_task=0.75)[1]
        for text, kept in zip(full, dropped, strict=True):
            prefix = text.split(" ")[0] + " " if text.startswith("(") else ""
            assert kept in ("", prefix)
            key = f"{prefix or 'caption'}->{'prefix' if kept else 'empty'}"
            seen[key] = seen.get(key, 0) + 1
    assert seen.get("caption->prefix", 0) == 0 and seen["caption->empty"] > 1000
    for prefix in ("(v2v) ", "(extend) "):
        share = seen[f"{prefix}->prefix"] / (seen[f"{prefix}->prefix"] + seen[f"{prefix}->empty"])
        assert 0.68 < share < 0.82, (prefix, share)
    assert step_data(9, 0, 8, 0.3)[1] == step_data(9, 0, 8, 0.3, drop_to_task=0.0)[1]
    assert data_changes(dataclasses.asdict(TrainConfig()), TrainConfig(drop_to_task=0.5)) == [
        "drop-to-task 0.0 -> 0.5"
    ]
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path), "--drop-to-task", "2"])


def test_export_sets_the_edits_unconditional_text(tmp_path):
    t = trainer()
    t.train(1, tmp_path)
    export_bundle(tmp_path, tmp_path / "ship")
    assert load_bundle(tmp_path / "ship" / f"{BUNDLE}.json", "cpu").settings.v2v_null == "empty"
    assert (
        run(["export", str(tmp_path), "--out", str(tmp_path / "task"), "--v2v-null", "task"]) == 0
    )
    pipe = load_bundle(tmp_path / "task" / f"{BUNDLE}.json", "cpu")
    assert pipe.settings.v2v_null == "task"
    assert (
        pipe.null_text("v2v") == "(v2v) "
        and pipe.null_text("extend") == pipe.null_text("t2v") == ""
    )
    meta = json.loads((tmp_path / "task" / f"{BUNDLE}.json").read_text())
    meta["sampling"]["v2v_null"] = "instruction"
    (tmp_path / "task" / f"{BUNDLE}.json").write_text(json.dumps(meta))
    with pytest.raises(EngineError, match="bad sampling settings.*v2v_null"):
        load_bundle(tmp_path / "task" / f"{BUNDLE}.json", "cpu")
    assert pipe.settings.v2v_carry == 0
    assert run(["export", str(tmp_path), "--out", str(tmp_path / "c"), "--v2v-carry", "3"]) == 0
    carried = load_bundle(tmp_path / "c" / f"{BUNDLE}.json", "cpu").settings
    assert carried.v2v_carry == 3
    for bad in (-1, carried.v2v_segment):  # a segment's frames can't all be carried
        assert (
            run(["export", str(tmp_path), "--out", str(tmp_path / "x"), "--v2v-carry", str(bad)])
            == 2
        )
    assert not (tmp_path / "x").exists()


def test_each_subcommand_takes_only_its_own_options(capsys):
    """The command line is four subcommands; an option of another (or none) is argparse's error."""
    for argv in (
        [],
        ["--out", "unused"],  # the old command line, without a subcommand
        ["train", "--out", "unused", "--export", "x"],
        ["train", "--out", "unused", "--decoder-steps", "2"],
        ["finetune-decoder", "--out", "unused"],  # --steps is required
        ["finetune-decoder", "--out", "unused", "--steps", "2", "--resume"],
        ["export", "unused", "--out", "x", "--steps", "2"],
        ["average", "--out", "x"],  # no bundles
        ["average", "a.json", "b.json", "--out", "x", "--temperature", "0.5"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert "error:" in capsys.readouterr().err, argv
