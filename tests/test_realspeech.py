"""egs/realspeech/run.sh: skips cleanly without the shared corpora; a reduced run end to end with them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "realspeech"
SHARED = ROOT.parent / "shared" / "data"
CORPORA = ("arabic_speech_commands", "dspspeech20", "speechocean762")


def _run(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(RECIPE / "run.sh"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_skips_with_a_message_when_the_data_root_is_absent(tmp_path):
    proc = _run("--data-root", tmp_path / "nowhere", "--work-dir", tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    assert "skipping the real-speech recipe" in proc.stdout
    for corpus in CORPORA:
        assert f"{tmp_path}/nowhere/{corpus}" in proc.stdout
    assert not (tmp_path / "work").exists()


def test_names_the_missing_corpora_relative_to_the_callers_folder(tmp_path):
    (tmp_path / "root" / "dspspeech20").mkdir(parents=True)
    proc = _run("--data-root", "root", "--work-dir", tmp_path / "work", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    missing = proc.stdout.split("not found:")[1].split("(")[0]
    assert f"{tmp_path}/root/arabic_speech_commands" in missing and f"{tmp_path}/root/speechocean762" in missing
    assert "dspspeech20" not in missing


@pytest.mark.parametrize("args, message", [
    (["--systems", "baseline magic"], "unknown system 'magic'"),
    (["--dropadapt-variants", "standard magic"], "unknown DropAdapt variant 'magic'"),
    (["--backend-adapt", "magic"], "unknown --backend-adapt 'magic'"),
    (["--adapt-to", "so xx"], "unknown corpus 'xx' in --adapt-to"),
    (["--loco", "maybe"], "--loco takes true or false"),
    (["--overwrite", "yes"], "--overwrite takes true or false"),
    (["--loco", "false"], "--loco false needs --backends without fused"),
    (["--loco", "false", "--backends", "cosine", "--systems", ""], "leaves nothing to train"),
    (["--backend-adapt", "mean", "--systems", "dropclass"], "--backend-adapt adapts the pooled baseline"),
    (["--ivectors", "ivector magic"], "unknown i-vector system 'magic'"),
    (["--ivectors", "ivector"], "back-end ivector_raw needs its i-vector system"),
    (["--cross-channel", "maybe"], "--cross-channel takes true or false"),
    (["--dev-conditions", "same both"], "unknown condition 'both' in --dev-conditions"),
    (["--dev-conditions", ""], "--dev-conditions needs same, cross or both"),
])
def test_bad_option_fails(tmp_path, args, message):
    proc = _run(*args, "--data-root", tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("conf, extractor, cpu_amp", [("train_ecapa.yaml", "ecapa_tdnn", False),
                                                      ("train_resnet.yaml", "resnet34", True)])
def test_an_extractor_variant_differs_from_the_recipes_extractor_only_in_its_network(conf, extractor, cpu_amp):
    """Besides the network, the ResNet variant only trains under bf16 autocast on CPU (its 2-D convolutions' cost)."""
    from dataclasses import replace

    from dropclass_lib.config import load_config
    from dropclass_lib.models import build_extractor
    from dropclass_lib.training.config import TrainConfig

    base = load_config(RECIPE / "conf" / "train.yaml", TrainConfig)
    variant = load_config(RECIPE / "conf" / conf, TrainConfig)
    assert variant.model.extractor == extractor and base.model.extractor == "tdnn"
    assert variant.train.cpu_amp == cpu_amp and not base.train.cpu_amp
    assert replace(variant, model=replace(variant.model, extractor="tdnn", extractor_opts=base.model.extractor_opts),
                   train=replace(variant.train, cpu_amp=False)) == base
    ext = build_extractor(variant.model.extractor, input_dim=80, **variant.model.extractor_opts)
    assert ext.emb_dim == base.model.extractor_opts["emb_dim"]


def _subset_corpora(dest: Path, words: int, so_speakers: int, so_utts: int) -> None:
    """The shared corpora's layouts with the first ``words`` words of every Arabic / DSPSpeech-20
    speaker and the first ``so_utts`` utterances of ``so_speakers`` speechocean762 speakers per half
    (file symlinks; the speechocean762 lists cut to match)."""
    asc, dsp, so = (SHARED / c for c in CORPORA)
    (dest / "arabic_speech_commands" / "dataset").mkdir(parents=True)
    for csv in ("train.csv", "val.csv", "test.csv"):
        os.symlink(asc / csv, dest / "arabic_speech_commands" / csv)
    for kw in sorted(p.name for p in (asc / "dataset").iterdir())[:words]:
        (dest / "arabic_speech_commands" / "dataset" / kw).mkdir()
        for f in (asc / "dataset" / kw).iterdir():
            os.symlink(f, dest / "arabic_speech_commands" / "dataset" / kw / f.name)
    for spk in (dsp / "speech_data").iterdir():
        out = dest / "dspspeech20" / "speech_data" / spk.name
        out.mkdir(parents=True)
        for f in sorted(spk.iterdir()):
            if int(f.name.split("-")[1]) < words:
                os.symlink(f, out / f.name)
    for part in ("train", "test"):
        spk2utt = [line.split() for line in (so / part / "spk2utt").read_text().splitlines()]
        keep = {u: s for s, *utts in spk2utt[:so_speakers] for u in utts[:so_utts]}
        (dest / "speechocean762" / part).mkdir(parents=True)
        for table in ("wav.scp", "utt2spk", "text"):
            lines = [line for line in (so / part / table).read_text().splitlines() if line.split()[0] in keep]
            (dest / "speechocean762" / part / table).write_text("\n".join(lines) + "\n")
        for utt, spk in keep.items():
            (dest / "speechocean762" / "WAVE" / f"SPEAKER{spk}").mkdir(parents=True, exist_ok=True)
            os.symlink(so / "WAVE" / f"SPEAKER{spk}" / f"{utt}.opus",
                       dest / "speechocean762" / "WAVE" / f"SPEAKER{spk}" / f"{utt}.opus")


def _tiny(conf: str, out: Path, **changes) -> Path:
    """A recipe config with small network and few iterations (``section__key`` changes)."""
    cfg = yaml.safe_load((RECIPE / "conf" / conf).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    out.write_text(yaml.safe_dump(cfg))
    return out


def _tiny_flat(conf: str, out: Path, **changes) -> Path:
    """A recipe config without sections, with ``changes``."""
    out.write_text(yaml.safe_dump({**yaml.safe_load((RECIPE / "conf" / conf).read_text()), **changes}))
    return out


def _fusion_lists(model: Path) -> set[str]:
    """The names of the development lists ``model``'s fusion was trained on."""
    return {entry.rsplit(":", 1)[1] for entry in yaml.safe_load((model / "fusion.yaml").read_text())["trained_on"]}


def _lowest_mean_backend(*results: dict) -> str:
    """The back-end of the pooled baseline with the lowest mean EER over the trial sets of ``results``."""
    tables = [t for r in results for t in r["sets"].values()]
    means = {b: sum(next(r for r in t["rows"] if r["system"] == "baseline")["backends"][b]["eer"]["mean"]
                    for t in tables) / len(tables)
             for b in tables[0]["backends"]}
    return min(means, key=lambda b: (means[b], b))


@pytest.mark.minutes
@pytest.mark.slow
@pytest.mark.skipif(not all((SHARED / c).is_dir() for c in CORPORA),
                    reason=f"the shared real corpora under {SHARED} are needed")
def test_reduced_run_end_to_end(tmp_path):
    _subset_corpora(tmp_path / "corpora", words=1, so_speakers=6, so_utts=6)
    small = dict(model__extractor_opts={"frame_dims": [32, 32, 32, 32, 64], "emb_dim": 16},
                 train__num_iters=12, train__checkpoint_every=12, optim__warmup_iters=0, optim__lr_halve_at=[],
                 data__batch_size=16, data__num_workers=0, data__min_frames=40, data__max_frames=60)
    train = _tiny("train.yaml", tmp_path / "t.yaml", **small)
    drop = _tiny("train_dropclass.yaml", tmp_path / "d.yaml", dropclass__num_drop=8, dropclass__its_per_drop=4, **small)
    adapt = _tiny("dropadapt.yaml", tmp_path / "a.yaml", adapt__its_per_drop=4, adapt__num_drop=8,
                  adapt__min_remaining=16, data__batch_size=16, data__num_workers=0, train__checkpoint_every=4)
    ivector_small = dict(num_gauss=8, ivector_dim=10, ubm_frames=5000, ubm_iters=5, num_iters=2, lda_dim=8)
    ivector = _tiny_flat("ivector.yaml", tmp_path / "i.yaml", **ivector_small)
    ivector_raw = _tiny_flat("ivector_raw.yaml", tmp_path / "ir.yaml", **ivector_small)
    work = tmp_path / "work"
    # --nj 1: one job process per set instead of two (the split into jobs is tested on the synthetic recipe)
    common = ["--data-root", tmp_path / "corpora", "--work-dir", work, "--nj", 1, "--seeds", 1, "--lda-dim", 8,
              "--augment", "true", "--speeds", "1.1", "--min-utts-per-spk", 3, "--asnorm-top-n", 10,
              "--train-conf", train, "--dropclass-conf", drop, "--dropadapt-conf", adapt, "--chunk-frames", 25,
              "--ivector-conf", ivector, "--ivector-raw-conf", ivector_raw]
    args = [*common, "--train-set", "data.min_frames=30 data.max_frames=50"]
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr[-4000:]

    # Trials stay within a corpus; speechocean762's design: first two utterances enrol.
    for c in ("asc", "dsp", "so"):
        for line in (work / "data" / f"{c}_test_no_sil" / "trials").read_text().splitlines():
            enrol, test, _ = line.split()
            assert enrol.startswith(f"{c}-") and test.startswith(f"{c}-")
    # The pools: all three corpora, each loco pool without its corpus; speed copies are new speakers.
    spks = lambda pool: {line.split()[0] for line in (work / "data" / f"train_{pool}" / "spk2utt").read_text().splitlines()}
    assert {s.split("-")[0] for s in spks("all")} == {"asc", "dsp", "so", "sp1.1"}
    for c in ("asc", "dsp", "so"):
        assert not any(s.startswith(f"{c}-") or s.startswith(f"sp1.1-{c}-") for s in spks(f"no_{c}"))
    # Every table has its systems, the floor, every back-end.
    pooled = json.dumps(json.loads((work / "exp" / "real" / "RESULTS.json").read_text()))
    for needle in ("asc_test", "dsp_test", "so_test", "baseline", "dropclass", "dropadapt",
                   "cosine_dm", "cosine_dm_asnorm", "plda_dm", "ivector", "ivector_raw", "fused"):
        assert needle in pooled, needle
    loco = json.loads((work / "exp" / "real_loco" / "RESULTS.json").read_text())
    assert sorted(loco["sets"]) == ["asc_test", "dsp_test", "so_test"]
    assert {r["system"] for t in loco["sets"].values() for r in t["rows"]} == {"baseline", "mfcc_floor"}
    dev = json.loads((work / "exp" / "real_loco_dev" / "RESULTS.json").read_text())
    assert sorted(dev["sets"]) == ["asc_dev", "dsp_dev", "so_dev"]
    # The same development trials with their test side through another microphone.
    dev_xch = json.loads((work / "exp" / "real_loco_dev_xch" / "RESULTS.json").read_text())
    assert sorted(dev_xch["sets"]) == ["asc_dev_xch", "dsp_dev_xch", "so_dev_xch"]
    assert {r["system"] for t in dev_xch["sets"].values() for r in t["rows"]} == {"baseline", "mfcc_floor"}
    # The cross-channel check: the same loco models and trials, the test side through another microphone.
    xch = json.loads((work / "exp" / "real_loco_xch" / "RESULTS.json").read_text())
    assert sorted(xch["sets"]) == ["asc_test_xch", "dsp_test_xch", "so_test_xch"]
    assert {r["system"] for t in xch["sets"].values() for r in t["rows"]} == {"baseline", "mfcc_floor"}
    for c in ("asc", "dsp", "so"):
        for part in ("train", "test"):
            clean = [tuple(line.split()) for line in (work / "data" / f"{c}_{part}_no_sil" / "trials").read_text().splitlines()]
            shifted = [line.split() for line in (work / "data" / f"{c}_{part}_xch_no_sil" / "trials").read_text().splitlines()]
            assert all(t.endswith("-sim_channel") for _, t, _ in shifted) and len(shifted) >= 0.9 * len(clean)
            assert {(e, t.removesuffix("-sim_channel"), label) for e, t, label in shifted} <= set(clean)
    # Every loco model's fusion is learnt on both kinds of development lists of the other two corpora.
    loco_models = {c: work / "exp" / "real_loco" / "models" / f"no_{c}" / "seed1" for c in ("asc", "dsp", "so")}
    for c, model in loco_models.items():
        assert _fusion_lists(model) == {f"{o}_dev{x}" for o in ("asc", "dsp", "so") if o != c for x in ("", "_xch")}
    # exp/real/best: the pooled baseline's package, scored by the back-end chosen on development data.
    best = work / "exp" / "real" / "best"
    assert best.is_symlink() and (best / "final.pt").is_file() and (best / "plda" / "plda.npz").is_file()
    front = yaml.safe_load((best / "frontend.yaml").read_text())
    assert front["feats"]["feat_type"] == "fbank" and front["cmn_window"] == 300
    assert yaml.safe_load((best / "scoring.yaml").read_text())["backend"] == _lowest_mean_backend(dev, dev_xch)
    # Every DropAdapt output is a package too, with the pooled i-vector systems; a loco package
    # holds those trained without its held-out corpus, which no i-vector system of it has seen.
    for c in ("asc", "dsp", "so"):
        assert (work / "exp" / "real" / "dropadapt_models" / f"{c}_seed1" / "frontend.yaml").is_file()
    for slot in ("ivector", "ivector_raw"):
        assert (best / slot / "extractor.npz").samefile(work / "exp" / "ivector_systems" / slot / "all" / "extractor.npz")
        for c in ("asc", "dsp", "so"):
            system = work / "exp" / "ivector_systems" / slot / f"no_{c}"
            assert (work / "exp" / "real_loco" / "models" / f"no_{c}" / "seed1" / slot / "plda.npz").samefile(
                system / "plda.npz")
            trained_on = json.loads((system / ".made_from.json").read_text())["inputs"]
            assert not any(f"/data/{c}_" in path for path in trained_on)
    assert set(yaml.safe_load((best / "fusion.yaml").read_text())["components"]) >= {"ivector", "stats"}

    # A second run of the whole recipe finds everything done: its data preparation rebuilds the
    # data directories (their lists deleted and written again with the same lines), and still
    # nothing is recomputed and no record rewritten.
    made = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.suffix in (".pt", ".ark", ".npz", ".yaml", ".json")}
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in made} == made
    # (the models, features and scores; the later runs below add rows to the tables)
    outputs = [p for p in made if p.suffix != ".json" or p.name == "metrics.json"]
    mtimes = {p: made[p] for p in outputs}

    # Every training takes the --train-set overrides; every evaluation embeds in --chunk-frames chunks.
    for model in [work / "exp" / "real" / "baseline" / "seed1", work / "exp" / "real" / "dropclass" / "seed1",
                  *loco_models.values()]:
        data_cfg = yaml.safe_load((model / "config.yaml").read_text())["data"]
        assert (data_cfg["min_frames"], data_cfg["max_frames"]) == (30, 50), model
    for c, model in loco_models.items():
        assert json.loads((model / f"xvectors_{c}_test" / ".made_from.json").read_text())["settings"]["chunk_frames"] == 25

    # Without pooled systems (an ablation of the loco models): the loco tables, no exp/real/best made;
    # the finished trainings and evaluations are found done.
    best_target = os.readlink(best)
    proc = _run(*args, "--stage", 3, "--systems", "")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "exp/real/best not made by this run" in proc.stdout
    assert os.readlink(best) == best_target
    assert {p: p.stat().st_mtime_ns for p in outputs} == mtimes
    # The DropAdapt study without loco models: more variants and back-end adaptation of the pooled
    # baseline, adapted to one test set only and scored on it; the loco directories are left alone.
    loco_files = {p: p.stat().st_mtime_ns for p in work.glob("exp/real_loco*/**/*") if p.is_file()}
    proc = _run(*args, "--stage", 4, "--loco", "false", "--backends", "cosine,plda", "--adapt-to", "so",
                "--dropadapt-variants", "standard random", "--backend-adapt", "mean")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "--loco false" in proc.stdout and os.readlink(best) == best_target
    assert {p: p.stat().st_mtime_ns for p in work.glob("exp/real_loco*/**/*") if p.is_file()} == loco_files
    pooled = json.loads((work / "exp" / "real" / "RESULTS.json").read_text())
    rows = {t: {r["system"] for r in table["rows"]} for t, table in pooled["sets"].items()}
    assert {"dropadapt_random", "backend_mean"} <= rows["so_test"]
    assert not {"dropadapt_random", "backend_mean"} & (rows["asc_test"] | rows["dsp_test"])
    random_model = work / "exp" / "real" / "dropadapt_random_models" / "so_seed1"
    assert yaml.safe_load((random_model / "config.yaml").read_text())["adapt"]["variant"] == "random"
    adaptation = yaml.safe_load((work / "exp" / "real" / "backend_mean_models" / "so_seed1" / "adaptation.yaml").read_text())
    assert adaptation["backend_adapt"] == "mean" and adaptation["dropadapt"] is False
    # A finished training asked for other settings refuses, naming the key; nothing is replaced.
    proc = _run(*common, "--train-set", "data.min_frames=30 data.max_frames=70", "--stage", 3, "--stop-stage", 3,
                "--systems", "")
    assert proc.returncode == 1
    assert "settings.config.data.max_frames (50 -> 70)" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in outputs} == mtimes

    # Development lists as recorded only: every fusion is trained again on those of the other
    # corpora, and the back-end of exp/real/best is chosen on them; no training is redone.
    trained = {p: p.stat().st_mtime_ns for p in work.glob("exp/**/final.pt")}
    proc = _run(*args, "--stage", 5, "--dev-conditions", "same")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in work.glob("exp/**/final.pt")} == trained
    for c, model in loco_models.items():
        assert _fusion_lists(model) == {f"{o}_dev" for o in ("asc", "dsp", "so") if o != c}
    assert yaml.safe_load((best / "scoring.yaml").read_text())["backend"] == _lowest_mean_backend(
        json.loads((work / "exp" / "real_loco_dev" / "RESULTS.json").read_text()))

    # An interrupted training (its record unfinished, no final model, a checkpoint) continues from
    # its newest checkpoint when the recipe runs again.
    model = loco_models["so"]
    record = json.loads((model / ".made_from.json").read_text())
    (model / ".made_from.json").write_text(json.dumps({**record, "complete": False}))
    (model / "final.pt").unlink()
    assert list(model.glob("checkpoint_*.pt"))
    proc = _run(*args, "--stage", 3, "--stop-stage", 3, "--systems", "")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resuming from" in (work / "exp" / "log" / "train_real_no_so_seed1.log").read_text()
    assert (model / "final.pt").is_file() and json.loads((model / ".made_from.json").read_text()).get("complete", True)
