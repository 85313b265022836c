#!/usr/bin/env python3
"""The VoxCeleb recipe at VoxCeleb2 scale: unit costs measured here, hours projected for a cluster.

Made-up VoxCeleb2-dev-sized metadata (1,092,009 utterances of 5,994 speakers, at least 8 each;
lengths 4 s + a log-normal tail, mean about 7.8 s, as VoxCeleb2's segments; ids of VoxCeleb2's
shape ``id00012-21Uxsk56VDQ-00001``) drives the measurements that depend on the corpus size;
the others reuse the project's benchmarks by importing them:

* ``index_rss_mib``: peak resident memory of a fresh process building the training FeatIndex
  over a 1,092,009-line feats.scp + utt2spk + utt2num_frames (FeatIndex reads those three
  tables and one matrix header, of the first entry, for the feature dimension: only that
  archive exists); the probe is bench_training's.
* ``sampler_batches_per_s``: BatchSpecs per second of one rank's BatchSampler, for each of 8
  ranks planning the paper's global batch of 500 with 2,000 of the 5,994 classes dropped
  (every rank plans the whole batch and keeps its slice), across a drop-period boundary.
* ``augment_x_realtime_per_core``: bench_augment's in-process rendering, reverb (synthetic and
  file RIRs) + noise on 8-s utterances, audio seconds per CPU second.
* ``features_x_realtime_per_core``: bench_features' whole make_features step (MFCC, --nj 1) on
  synthetic audio, audio seconds per CPU second of the step beyond its fixed start-up cost
  (measured on a one-utterance data dir).
* ``extract_x_realtime_per_core``: the recipe's extractor (egs/voxceleb/conf/train_dropclass.yaml's
  model, random weights, 30-dim features) through dropclass_lib.embeddings.embed_utterances on
  8-s utterances (800 frames), one torch thread, seconds of features per CPU second.
* ``train_frames_per_cpu_s``: bench_extractors' training step of that model (forward, backward,
  SGD) on 350-frame crops, one torch thread.
* ``score_trials_per_s``: cosine (512 dims, training-mean subtracted) and LDA-200 + PLDA on random
  Vox1-E- and Vox1-H-sized lists (579,818 and 550,894 trials over 145,375 utterances) with
  bench_scoring's synthetic embeddings, through pair_scores (best of the repeats).

Then ``projected_hours_<stage>`` for the whole recipe (run.sh's stages, the default four systems)
on the cluster of --cores CPU cores and --gpus GPUs, assuming the jobs scale linearly over the
cores. No GPU figure is measured here: for the GPU stages (training, extraction, DropAdapt) the
CPU projection is printed and the GPU one is said to be unmeasured (bench/gpu_train_extract.py
measures it on a GPU machine). Every figure is a line ``figure: NAME VALUE UNIT``.

  python bench/bench_scale.py --quick      # under 20 min on 2 cores
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import kaldiio
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_augment  # noqa: E402
import bench_extractors  # noqa: E402
import bench_features  # noqa: E402
import bench_scoring  # noqa: E402
import bench_training  # noqa: E402
from dropclass_lib.backends.cosine import CosineBackend  # noqa: E402
from dropclass_lib.backends.plda import PldaBackend  # noqa: E402
from dropclass_lib.backends.scoring import pair_scores  # noqa: E402
from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.config import load_config  # noqa: E402
from dropclass_lib.dropadapt_config import DropAdaptConfig  # noqa: E402
from dropclass_lib.embeddings import embed_utterances  # noqa: E402
from dropclass_lib.models import build_extractor  # noqa: E402
from dropclass_lib.tables import c_sorted  # noqa: E402
from dropclass_lib.training.config import DropClassConfig, TrainConfig  # noqa: E402
from dropclass_lib.training.data import FeatIndex  # noqa: E402
from dropclass_lib.training.dropclass import ClassState, DropSchedule  # noqa: E402
from dropclass_lib.training.sampler import BatchSampler  # noqa: E402

VOX2_DEV_UTTS, VOX2_DEV_SPEAKERS = 1_092_009, 5_994
VOX1_UTTS, VOX1_HOURS = 153_516, 352.0   # all of VoxCeleb1 (the E and H lists use it): published totals
VOX1_LISTS = {"O": 37_611, "E": 579_818, "H": 550_894}  # trials of the cleaned lists
VOX1_EH_UTTS = 145_375
AUGMENTED_UTTS = 1_000_000                # run.sh stage 3: a random 1M of the augmented copies join
SYSTEMS = 4                               # run.sh's default --systems
FEAT_DIM = 30                             # conf/mfcc.yaml: 30 cepstra
FRAMES_PER_S = 100
RECIPE_CONF = ROOT / "egs" / "voxceleb" / "conf" / "train_dropclass.yaml"
ADAPT_CONF = ROOT / "egs" / "voxceleb" / "conf" / "dropadapt.yaml"


def figure(name: str, value: float, unit: str, note: str = "") -> None:
    digits = 0 if abs(value) >= 100 else 2 if abs(value) >= 1 else 4
    print(f"figure: {name} {value:.{digits}f} {unit}" + (f"  ({note})" if note else ""), flush=True)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return (f"{model}, {os.cpu_count()} cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
            f"torch {torch.__version__}")


# ------------------------------------------------------------------ VoxCeleb2-sized metadata
def vox2_metadata(seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(utt ids, speaker index per utterance, seconds per utterance)``, utterances C-sorted."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 0.6, VOX2_DEV_SPEAKERS)
    counts = 8 + rng.multinomial(VOX2_DEV_UTTS - 8 * VOX2_DEV_SPEAKERS, weights / weights.sum())
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    ids, spk = [], []
    for s, n in enumerate(counts):
        videos = ["".join(v) for v in alphabet[rng.integers(0, len(alphabet), (max(1, n // 8), 11))]]
        ids += [f"id{s:05d}-{videos[k % len(videos)]}-{k:05d}" for k in range(n)]
        spk += [s] * n
    seconds = np.minimum(4.0 + rng.lognormal(np.log(3.8) - 0.32, 0.8, VOX2_DEV_UTTS), 120.0)
    order = np.array(sorted(range(len(ids)), key=lambda i: ids[i].encode()))
    return [ids[i] for i in order], np.asarray(spk)[order], seconds[order]


def write_index_tables(root: Path, ids: list[str], spk: np.ndarray, frames: np.ndarray) -> None:
    """feats.scp (the first entry in a real archive, the rest in archives that need not exist),
    utt2spk and utt2num_frames."""
    root.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{root}/first.ark,{root}/first.scp") as w:
        w(ids[0], np.zeros((int(frames[0]), FEAT_DIM), np.float32))
    first = (root / "first.scp").read_text().split()[1]
    with open(root / "feats.scp", "w") as f, open(root / "utt2spk", "w") as g, open(root / "utt2num_frames", "w") as h:
        offset = 0
        for i, (utt, s, n) in enumerate(zip(ids, spk, frames)):
            f.write(f"{utt} {first}\n" if i == 0 else f"{utt} mfcc/raw_mfcc_train.{1 + i % 40}.ark:{offset}\n")
            offset += 15 + 4 * FEAT_DIM * int(n)
            g.write(f"{utt} id{s:05d}\n")
            h.write(f"{utt} {n}\n")


def measure_index(work: Path, ids, spk, frames) -> None:
    root = work / "index"
    t = time.perf_counter()
    write_index_tables(root, ids, spk, frames)
    written = time.perf_counter() - t
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", bench_training.INDEX_PROBE, str(root)], capture_output=True,
                         text=True, env=env, check=True)
    count, nbytes, rss0, peak, after, secs = out.stdout.split()
    figure("index_rss_mib", int(peak) / 2**10, "MiB",
           f"peak resident memory of the indexing process, {int(rss0) / 2**10:.0f} MiB before, "
           f"{int(after) / 2**10:.0f} MiB after; {int(count):,} utterances, {int(nbytes) / 2**20:.1f} MiB of arrays; "
           f"built in {float(secs):.1f} s (tables written in {written:.1f} s); limit 2048 MiB")


def index_from_metadata(ids, spk, frames) -> FeatIndex:
    """The FeatIndex of that metadata built from arrays (the sampler never opens an archive)."""
    labels = spk.astype(np.int32)
    start = np.zeros(VOX2_DEV_SPEAKERS + 1, dtype=np.int64)
    np.cumsum(np.bincount(labels, minlength=VOX2_DEV_SPEAKERS), out=start[1:])
    n = len(ids)
    return FeatIndex(np.array([u.encode() for u in ids], dtype=bytes), ["x.ark"], np.zeros(n, np.int32),
                     np.zeros(n, np.int64), frames.astype(np.int32), labels,
                     c_sorted(f"id{s:05d}" for s in range(VOX2_DEV_SPEAKERS)),
                     np.argsort(labels, kind="stable").astype(np.int32), start, FEAT_DIM)


def measure_sampler(index: FeatIndex, iters: int) -> None:
    cfg = load_config(RECIPE_CONF, TrainConfig)
    world, batch = 8, cfg.data.batch_size
    elapsed, first_classes = 0.0, None
    for rank in range(world):
        schedule = DropSchedule(DropClassConfig(num_drop=cfg.dropclass.num_drop,
                                                its_per_drop=cfg.dropclass.its_per_drop),
                                ClassState.full(index.classes), cfg.train.seed)
        sampler = BatchSampler(index, schedule, cfg.data.sampler, batch, cfg.data.min_frames, cfg.data.max_frames,
                               cfg.train.seed, rank, world, cfg.data.short_utts)
        start_it = cfg.dropclass.its_per_drop - iters // 2  # straddle a new drop
        sampler.load_state_dict({"next_iteration": start_it, "pool": []})
        t = time.perf_counter()
        for spec, _ in zip(sampler, range(iters)):
            pass
        elapsed += time.perf_counter() - t
        classes = sampler.batch_classes(spec.iteration)
        if first_classes is None:
            first_classes = classes
        elif not np.array_equal(classes, first_classes):
            raise RuntimeError(f"rank {rank} planned another global batch than rank 0")
    figure("sampler_batches_per_s", world * iters / elapsed, "batches/s",
           f"per rank: each of {world} ranks plans the global batch of {batch} ({cfg.dropclass.num_drop} of "
           f"{VOX2_DEV_SPEAKERS} classes dropped) and keeps its slice; {iters} iterations per rank across a drop")


# ------------------------------------------------------------------ reused benchmarks
def measure_augment(work: Path, utts: int) -> float:
    dirs = bench_augment.make_sources(work / "augment", utts, 8, 8.0)
    import dropclass_lib.corpora.channel  # noqa: F401  (scipy.signal's one-time import, as bench_augment)
    results = {kind: bench_augment.render_kind(work / "augment", dirs, kind) for kind in bench_augment.OVERALL}
    audio, cpu = sum(a for a, _ in results.values()), sum(c for _, c in results.values())
    rate = audio / cpu
    figure("augment_x_realtime_per_core", rate, "x",
           f"{' + '.join(bench_augment.OVERALL)} on {utts} 8-s utterances each: {audio:.0f} s of audio, {cpu:.2f} CPU s")
    return rate


def measure_features(work: Path, hours: float) -> float:
    wavs = bench_features.synth_wavs(work / "wav", min(10.0, hours * 60), 8.0)
    num_utts = max(1, round(hours * 3600 / 8.0))
    bench_features.write_data_dir(work / "data", wavs, num_utts)
    bench_features.write_data_dir(work / "one", wavs[:1], 1)
    _, fixed_cpu, _ = bench_features.run_step(work / "one", work, "one", 1, "mfcc")
    wall, cpu, _ = bench_features.run_step(work / "data", work, "all", 1, "mfcc")
    seconds = num_utts * 8.0
    rate = seconds / max(cpu - fixed_cpu, 1e-9)
    figure("features_x_realtime_per_core", rate, "x",
           f"make_features.py --nj 1, MFCC, {seconds / 3600:.2f} h: {cpu:.2f} CPU s of which {fixed_cpu:.2f} s is the "
           f"fixed start-up; whole step {seconds / cpu:.0f} x per CPU-second, {wall:.1f} s wall")
    return rate


def recipe_model_opts() -> tuple[str, dict]:
    cfg = load_config(RECIPE_CONF, TrainConfig)
    return cfg.model.extractor, dict(cfg.model.extractor_opts)


def measure_extraction(utts: int) -> float:
    name, opts = recipe_model_opts()
    torch.manual_seed(0)
    extractor = build_extractor(name, input_dim=FEAT_DIM, **opts)
    rng = np.random.default_rng(0)
    feats = [(f"u{i}", rng.standard_normal((800, FEAT_DIM)).astype(np.float32)) for i in range(utts + 1)]
    list(embed_utterances(extractor, feats[:1]))  # warm-up
    t = time.process_time()
    out = list(embed_utterances(extractor, feats[1:]))
    cpu = time.process_time() - t
    rate = utts * 8.0 / cpu
    figure("extract_x_realtime_per_core", rate, "x",
           f"{name} {opts}, {utts} utterances of 800 frames, {cpu:.2f} CPU s, {out[0][1].shape[0]}-dim embeddings")
    return rate


def measure_training_cpu(batch: int) -> float:
    name, opts = recipe_model_opts()
    args = Namespace(dim=FEAT_DIM, num_classes=VOX2_DEV_SPEAKERS, batch_size=batch, frames=350, iters=1, utt_frames=800)
    r = bench_extractors.measure(name, opts, args)
    figure("train_frames_per_cpu_s", r["train_cpu_fps"], "frames/CPU-s",
           f"{name}, {r['params'] / 1e6:.2f} M parameters, batch {batch} x 350 frames, forward + backward + SGD, "
           "one torch thread")
    return r["train_cpu_fps"]


def measure_scoring(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    train_x, labels = bench_scoring.embeddings(rng, 20_000, 1_000, 512)
    plda = PldaBackend.train(train_x, labels, lda_dim=200)
    emb = bench_scoring.embeddings(rng, VOX1_EH_UTTS, 1_251, 512)[0]
    rates = {}
    for backend in (CosineBackend(train_x.mean(axis=0)), plda):
        space = backend.transform(emb)
        for name in ("E", "H"):
            n = VOX1_LISTS[name]
            ei, ti = rng.integers(0, len(emb), n), rng.integers(0, len(emb), n)
            _, secs = bench_scoring.best_time(lambda: pair_scores(space, space, ei, ti), repeats)
            figure(f"score_trials_per_s[{backend.name},vox1-{name}]", n / secs, "trials/s",
                   f"{n:,} random trials over {len(emb):,} utterances, {space.vec.shape[1]} dims")
            rates.setdefault(backend.name, []).append(n / secs)
    return {k: min(v) for k, v in rates.items()}


# ------------------------------------------------------------------ projections
def project(args, seconds: np.ndarray, rates: dict) -> None:
    cores, gpus = args.cores, args.gpus
    train_cfg = load_config(RECIPE_CONF, TrainConfig)
    adapt = load_config(ADAPT_CONF, DropAdaptConfig)
    vox2_h = float(seconds.sum()) / 3600
    aug_h = AUGMENTED_UTTS * float(seconds.mean()) / 3600
    print(f"projection for {cores} CPU cores + {gpus} GPUs, jobs scaling linearly over the cores; VoxCeleb2 dev "
          f"{vox2_h:,.0f} h (mean {seconds.mean():.2f} s), VoxCeleb1 {VOX1_HOURS:.0f} h, {AUGMENTED_UTTS:,} augmented "
          f"utterances ({aug_h:,.0f} h), {SYSTEMS} systems; SITW not included")
    hours = {}
    hours["features"] = (vox2_h + VOX1_HOURS) / (rates["features"] * cores)
    hours["augment"] = aug_h * (1 / rates["augment"] + 1 / rates["features"]) / cores
    train_frames = train_cfg.train.num_iters * train_cfg.data.batch_size * train_cfg.data.max_frames
    hours["train_cpu"] = SYSTEMS * train_frames / (rates["train"] * cores) / 3600
    # stage 7: the clean training set and VoxCeleb1 per system; stage 9 repeats it per system and trial list
    extract_h = vox2_h + VOX1_HOURS
    hours["extract_cpu"] = SYSTEMS * extract_h / (rates["extract"] * cores)
    trials = sum(VOX1_LISTS.values())
    hours["score"] = SYSTEMS * trials * (1 / rates["cosine"] + 1 / rates["plda"]) / 3600
    adapt_frames = (adapt.adapt.num_rounds * adapt.adapt.its_per_drop * adapt.data.batch_size
                    * adapt.data.max_frames)
    lists = len(VOX1_LISTS)
    hours["dropadapt_cpu"] = SYSTEMS * lists * (adapt_frames / (rates["train"] * cores) / 3600
                                                + extract_h / (rates["extract"] * cores))
    for stage, h in hours.items():
        figure(f"projected_hours_{stage}", h, "h")
    figure("projected_hours_total_cpu_only", sum(hours.values()), "h", "every stage on the CPU cores, one after the other")
    if args.gpu_train_frames_per_s and args.gpu_extract_x_realtime:
        gpu_fps, gpu_xrt = args.gpu_train_frames_per_s * gpus, args.gpu_extract_x_realtime * gpus
        figure("projected_hours_train_gpu", SYSTEMS * train_frames / gpu_fps / 3600, "h",
               f"from --gpu-train-frames-per-s {args.gpu_train_frames_per_s:g} per GPU, scaling linearly to {gpus} GPUs")
        figure("projected_hours_extract_gpu", SYSTEMS * extract_h / gpu_xrt, "h")
        figure("projected_hours_dropadapt_gpu", SYSTEMS * lists * (adapt_frames / gpu_fps / 3600 + extract_h / gpu_xrt), "h")
    else:
        print("GPU stages (train, extract, dropadapt): projected above for the CPU cores only; the GPU projection is "
              "unmeasured (run bench/gpu_train_extract.py on a GPU machine, then pass its figures as "
              "--gpu-train-frames-per-s and --gpu-extract-x-realtime)")
    print("not measured here: decoding VoxCeleb2's m4a through ffmpeg (the features figure is on wav files), reading "
          "the corpus from disk, VAD, CMN, filtering, LDA/PLDA training, DropAdapt's p_avg, the results tables")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small samples of every measurement (under 20 min on 2 cores)")
    p.add_argument("--cores", type=int, default=32, help="CPU cores of the projected cluster")
    p.add_argument("--gpus", type=int, default=8, help="GPUs of the projected cluster")
    p.add_argument("--gpu-train-frames-per-s", type=float, default=None,
                   help="training frames/s of one GPU (bench/gpu_train_extract.py's train_frames_per_s[cuda])")
    p.add_argument("--gpu-extract-x-realtime", type=float, default=None,
                   help="extraction x real time of one GPU (bench/gpu_train_extract.py's extract_x_realtime[cuda])")
    args = p.parse_args(argv)
    q = args.quick
    torch.set_num_threads(1)
    print(f"machine: {machine()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"{'--quick' if q else 'full'} run", flush=True)
    t0 = time.perf_counter()
    ids, spk, seconds = vox2_metadata()
    frames = (seconds * FRAMES_PER_S).astype(np.int64)
    print(f"metadata: {len(ids):,} utterances, {VOX2_DEV_SPEAKERS:,} speakers, mean {seconds.mean():.2f} s, "
          f"{seconds.sum() / 3600:,.0f} h (made up in {time.perf_counter() - t0:.1f} s)", flush=True)
    rates = {}
    with tempfile.TemporaryDirectory(prefix="bench_scale.") as tmp:
        work = Path(tmp)
        measure_index(work, ids, spk, frames)
        measure_sampler(index_from_metadata(ids, spk, frames), 100 if q else 500)
        del ids
        rates["augment"] = measure_augment(work, 10 if q else 40)
        rates["features"] = measure_features(work / "features", 1.0 if q else 5.0)
    rates["extract"] = measure_extraction(16 if q else 64)
    rates["train"] = measure_training_cpu(16 if q else 32)
    rates.update(measure_scoring(1 if q else 3))
    project(args, seconds, rates)
    print(f"bench_scale: {time.perf_counter() - t0:.0f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
