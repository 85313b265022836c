"""Training data: the lazy feature index, crop reading, batch sampling.

Also provides :func:`make_feats_dir`, the tiny synthetic training set the other training
tests use: each speaker's frames are noise around a speaker-specific mean, so it is learnable.
"""

import numpy as np
import kaldiio
import pytest

from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import write_table
from dropclass_lib.training.config import DropClassConfig
from dropclass_lib.training.data import CropDataset, FeatIndex
from dropclass_lib.training.dropclass import ClassState, DropSchedule
from dropclass_lib.training.sampler import BatchSampler


def make_feats_dir(root, num_spk=12, utts_per_spk=4, dim=6, frames=(40, 80), seed=0, with_num_frames=True,
                   inf_utt=None):
    """Write ``root/feats.ark|scp``, ``utt2spk``, ``spk2utt`` (+ ``utt2num_frames``); return root."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    mats, utt2spk, spk2utt, nframes = {}, {}, {}, {}
    for s in range(num_spk):
        spk = f"spk{s:03d}"
        mean = rng.normal(0, 2, dim)
        for u in range(utts_per_spk):
            utt = f"{spk}-u{u}"
            n = int(rng.integers(frames[0], frames[1] + 1))
            mats[utt] = (mean + rng.normal(0, 1, (n, dim))).astype(np.float32)
            utt2spk[utt] = spk
            spk2utt.setdefault(spk, []).append(utt)
            nframes[utt] = n
    if inf_utt is not None:
        mats[inf_utt][:, 0] = np.inf
    with kaldiio.WriteHelper(f"ark,scp:{root}/feats.ark,{root}/feats.scp") as writer:
        for utt in sorted(mats):
            writer(utt, mats[utt])
    write_table(root / "utt2spk", utt2spk)
    write_table(root / "spk2utt", spk2utt)
    if with_num_frames:
        write_table(root / "utt2num_frames", nframes)
    return root


@pytest.mark.parametrize("with_num_frames", [True, False])
def test_index_and_crops_match_kaldiio(tmp_path, with_num_frames):
    d = make_feats_dir(tmp_path / "d", with_num_frames=with_num_frames)
    ix = FeatIndex.from_data_dir(d, min_frames=50)
    full = kaldiio.load_scp(str(d / "feats.scp"))
    kept = [u for u in sorted(full) if full[u].shape[0] >= 50]
    assert [u.decode() for u in ix.utt_ids] == kept
    assert ix.num_skipped_short == len(full) - len(kept)
    assert ix.feat_dim == 6 and ix.classes == sorted({u.split("-")[0] for u in kept})
    for c, spk in enumerate(ix.classes):
        members = ix.class_order[ix.class_start[c]:ix.class_start[c + 1]]
        assert all(ix.utt_ids[m].decode().startswith(spk) for m in members)
    ds = CropDataset(ix)
    from dropclass_lib.training.sampler import BatchSpec
    spec = BatchSpec(7, np.array([0, 3]), np.array([5, 0]), 20)
    batch = ds[spec]
    assert batch["feats"].shape == (2, 20, 6) and batch["iteration"] == 7
    np.testing.assert_array_equal(batch["feats"][0].numpy(), full[kept[0]][5:25])
    np.testing.assert_array_equal(batch["feats"][1].numpy(), full[kept[3]][0:20])


def test_index_memory_is_compact(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    n = 20000
    with open(d / "feats.scp", "w") as f, open(d / "utt2spk", "w") as g, open(d / "utt2num_frames", "w") as h:
        for i in range(n):
            utt = f"id{i // 50:05d}-utt{i:07d}"
            f.write(f"{utt} /nonexistent/raw_feats.{i % 7}.ark:{1000 + 77 * i}\n")
            g.write(f"{utt} id{i // 50:05d}\n")
            h.write(f"{utt} {300 + i % 500}\n")
    import dropclass_lib.training.data as data_mod
    orig = data_mod.MatrixReader.shape
    data_mod.MatrixReader.shape = lambda self, ark, off: (0, 30)  # no archive exists: only the index is measured
    try:
        ix = FeatIndex.from_data_dir(d)
    finally:
        data_mod.MatrixReader.shape = orig
    assert len(ix) == n and len(ix.classes) == n // 50 and len(ix.ark_paths) == 7
    assert ix.offsets[-1] == 1000 + 77 * (n - 1)
    assert ix.nbytes() / n < 60  # -> about 60 MB for 1M utterances (bench/bench_training.py measures RSS)


def test_bad_scp_line_is_named(tmp_path):
    d = make_feats_dir(tmp_path / "d")
    lines = (d / "feats.scp").read_text().splitlines()
    lines[2] = lines[2].split()[0] + " raw_feats.ark"
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"feats.scp:3: expected 'utt-id ark-path:byte-offset'"):
        FeatIndex.from_data_dir(d)
    d2 = make_feats_dir(tmp_path / "d2")
    (d2 / "utt2spk").write_text("".join(l for l in open(d2 / "utt2spk") if not l.startswith("spk001-u1")))
    with pytest.raises(InputFileError, match=r"feats.scp:6: utterance 'spk001-u1' is not in"):
        FeatIndex.from_data_dir(d2)
    with pytest.raises(UserError, match="no utterance has at least 500 frames"):
        FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d3"), min_frames=500)


def sampler_for(ix, cfg=None, kind="balanced", batch=4, seed=3, rank=0, world=1, state=None):
    state = state or ClassState.full(ix.classes)
    sched = DropSchedule(cfg or DropClassConfig(), state, seed)
    return BatchSampler(ix, sched, kind, batch, 20, 30, seed, rank, world)


def test_balanced_batches_distinct_classes_and_pool_cycles(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    s = sampler_for(ix, batch=5)
    specs = [spec for spec, _ in zip(s, range(12))]
    seen = []
    for spec in specs:
        classes = ix.labels[spec.utts]
        assert len(set(classes)) == 5
        assert 20 <= spec.length <= 30 and np.all(spec.starts + spec.length <= ix.num_frames[spec.utts])
        seen.extend(classes)
    # 60 draws from 12 classes, pool refilled when empty: every class exactly 5 times
    assert np.all(np.bincount(seen, minlength=12) == 5)


def test_sampler_resume_replays_the_same_batches(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    a = sampler_for(ix, batch=5)
    run = [spec for spec, _ in zip(a, range(10))]
    b = sampler_for(ix, batch=5)
    it_b = iter(b)
    for _ in range(4):
        next(it_b)
    state = b.state_after(3)
    c = sampler_for(ix, batch=5)
    c.load_state_dict(state)
    rest = [spec for spec, _ in zip(c, range(6))]
    for x, y in zip(run[4:], rest):
        assert x.iteration == y.iteration and x.length == y.length
        np.testing.assert_array_equal(x.utts, y.utts)
        np.testing.assert_array_equal(x.starts, y.starts)


def test_ranks_get_distinct_classes(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    r0, r1 = sampler_for(ix, rank=0, world=2), sampler_for(ix, rank=1, world=2)
    for a, b, _ in zip(r0, r1, range(5)):
        assert not set(ix.labels[a.utts]) & set(ix.labels[b.utts])
        assert a.length == b.length
    with pytest.raises(ValueError, match="needs 13 distinct classes"):  # batch_size is the global batch
        sampler_for(ix, batch=13, world=2)


def test_random_sampler(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    s = sampler_for(ix, kind="random", batch=10)
    counts = np.zeros(len(ix), int)
    for spec, _ in zip(s, range(40)):
        assert len(set(spec.utts)) == 10
        counts[spec.utts] += 1
    assert (counts > 0).mean() > 0.9


def test_drop_period_excludes_dropped_classes_from_batches_and_head(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    cfg = DropClassConfig(num_drop=4, its_per_drop=3)
    s = sampler_for(ix, cfg=cfg, batch=5)
    sched = s.schedule
    drops = {}
    for spec, _ in zip(s, range(15)):
        dropped = sched.dropped(spec.iteration)
        drops.setdefault(spec.iteration // 3, tuple(dropped))
        assert len(dropped) == 4 and dropped.tolist() == sorted(set(dropped.tolist()))
        assert not set(ix.labels[spec.utts]) & set(dropped)
        import torch
        active = sched.active_rows(spec.iteration, torch.from_numpy(ix.labels[spec.utts].astype(np.int64)))
        assert sorted(set(active.tolist()) | set(dropped)) == list(range(12))
        assert not set(active.tolist()) & set(dropped)
    assert len(set(drops.values())) > 1  # fresh random drops per period
    assert sched.starts_period(3) and not sched.starts_period(4) and not sched.starts_period(0)
    sched.write_plan(tmp_path / "plan.tsv", 9, ix.classes)
    lines = (tmp_path / "plan.tsv").read_text().splitlines()
    assert lines[0] == "iteration\tdropped" and [l.split("\t")[0] for l in lines[1:]] == ["0", "3", "6"]
    assert lines[2].split("\t")[1].split(",") == [ix.classes[c] for c in drops[1]]


def test_class_state_removal_combine_and_only_data(tmp_path):
    import torch
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))
    st = ClassState.full(ix.classes)
    st.data_mask[[0, 1]] = False          # removed from data ...
    st.row_mask[[0]] = False              # ... class 0 also from the head; class 1 'only_data'
    sched = DropSchedule(DropClassConfig(), st, 0)
    rows = sched.active_rows(0, torch.tensor([2, 3]))
    assert rows.tolist() == list(range(1, 12))
    s = BatchSampler(ix, sched, "balanced", 5, 20, 30, 0)
    for spec, _ in zip(s, range(6)):
        assert not set(ix.labels[spec.utts]) & {0, 1}
    combined = ClassState(12, np.ones(12, bool), np.array([12, 12] + list(range(2, 12))),
                          np.array([False, False] + [True] * 11), ix.classes + ["<other>"])
    combined.validate()
    rows = DropSchedule(DropClassConfig(), combined, 0).active_rows(0, torch.tensor([0]))
    assert rows.tolist() == list(range(2, 13))


def test_short_utts_shorten_cuts_the_batch_and_repeat_tiles(tmp_path):
    d = make_feats_dir(tmp_path / "d", frames=(10, 80))
    ix = FeatIndex.from_data_dir(d)
    sched = DropSchedule(DropClassConfig(), ClassState.full(ix.classes), 0)
    ref = dict(kaldiio.load_scp(str(d / "feats.scp")))
    ds = CropDataset(ix)
    for mode in ("shorten", "repeat"):
        s = BatchSampler(ix, sched, "balanced", 6, 60, 70, 3, short_utts=mode)
        saw_short = False
        for it in range(20):
            spec = s.plan(it)
            frames = ix.num_frames[spec.utts]
            if mode == "shorten":
                assert spec.length <= frames.min()
                continue
            assert 60 <= spec.length <= 70
            batch = ds[spec]["feats"].numpy()
            assert batch.shape[1] == spec.length
            for row, (u, start) in enumerate(zip(spec.utts, spec.starts)):
                mat = ref[ix.utt_ids[u].decode()]
                if len(mat) < spec.length:
                    saw_short = True
                    assert start == 0
                    np.testing.assert_array_equal(batch[row], mat[np.arange(spec.length) % len(mat)])
                else:
                    np.testing.assert_array_equal(batch[row], mat[start:start + spec.length])
        if mode == "repeat":
            assert saw_short
