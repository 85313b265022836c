"""Kaldi data directory -> lhotse manifests -> data directory, with plain paths and a pipe."""

from __future__ import annotations

import pytest
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from conftest import make_data_dir, run_cli, write_wav
from dropclass_lib.errors import UserError
from dropclass_lib.lhotse_io import data_dir_to_lhotse, lhotse_to_data_dir, load_manifests


def put(path, rows):
    path.write_text("".join(f"{r}\n" for r in rows))


@pytest.fixture
def mixed_dir(tmp_path):
    """Plain paths plus one 'cat FILE |' entry; no utt2dur, so durations are measured."""
    data = make_data_dir(tmp_path, {"spkA": 2, "spkB": 1})
    (data / "utt2dur").unlink()
    rows = (data / "wav.scp").read_text().splitlines()
    utt, path = rows[1].split()
    rows[1] = f"{utt} cat {path} |"
    put(data / "wav.scp", rows)
    return data


def test_round_trip_through_manifest_files(mixed_dir, tmp_path):
    manifests = tmp_path / "manifests"
    assert run_cli("utils/data_dir_to_lhotse.py", str(mixed_dir), str(manifests))[0] == 0
    recordings, supervisions = load_manifests(manifests / "recordings.jsonl.gz", manifests / "supervisions.jsonl.gz")
    piped = recordings["spkA-utt1"]
    assert piped.sources[0].type == "command" and piped.sampling_rate == 16000
    assert piped.num_samples == int(0.21 * 16000)
    assert recordings["spkA-utt0"].sources[0].type == "file"
    assert supervisions["spkB-utt0"].speaker == "spkB"
    assert piped.load_audio().shape == (1, int(0.21 * 16000))  # lhotse itself can run the pipe

    out = tmp_path / "back"
    assert run_cli("utils/lhotse_to_data_dir.py", str(manifests / "recordings.jsonl.gz"),
                   str(manifests / "supervisions.jsonl.gz"), str(out))[0] == 0
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        assert (out / name).read_text() == (mixed_dir / name).read_text(), name
    durations = dict(line.split() for line in (out / "utt2dur").read_text().splitlines())
    assert {u: float(d) for u, d in durations.items()} == pytest.approx({"spkA-utt0": 0.2, "spkA-utt1": 0.21, "spkB-utt0": 0.2})
    assert run_cli("utils/validate_data_dir.py", str(out))[0] == 0


def test_utt2dur_is_used_when_present(data_dir):
    put(data_dir / "utt2dur", ["spkA-utt0 1.5", "spkA-utt1 0.21", "spkA-utt2 0.22", "spkB-utt0 0.2", "spkB-utt1 0.21", "spkC-utt0 0.2"])
    recordings, supervisions = data_dir_to_lhotse(data_dir)
    assert recordings["spkA-utt0"].duration == 1.5 and supervisions["spkA-utt0"].duration == 1.5


def test_mixed_sample_rates_are_an_error(tmp_path):
    data = make_data_dir(tmp_path, {"s": 2})
    (data / "utt2dur").unlink()
    write_wav(tmp_path / "wav" / "s-utt1.wav", 0.2, rate=8000)
    with pytest.raises(UserError, match="'s-utt1' has sample rate 8000 Hz, expected 16000 Hz \\(the rate of 's-utt0'\\)"):
        data_dir_to_lhotse(data)
    with pytest.raises(UserError, match="'s-utt0' has sample rate 16000 Hz, expected 8000 Hz \\(--sampling-rate 8000\\)"):
        data_dir_to_lhotse(data, sampling_rate=8000)


def test_failing_pipe_is_an_error(mixed_dir):
    put(mixed_dir / "wav.scp", [*(mixed_dir / "wav.scp").read_text().splitlines()[:1], "spkA-utt1 exit 3 |", "spkB-utt0 false |"])
    code, err = run_cli("utils/data_dir_to_lhotse.py", str(mixed_dir), str(mixed_dir / "m"))
    assert code == 1 and "spkA-utt1" in err and "status 3" in err and "Traceback" not in err


def test_segments_cannot_be_exported(tmp_path):
    wav = write_wav(tmp_path / "r.wav", 1.0)
    recordings = RecordingSet.from_recordings([Recording.from_file(wav, recording_id="r")])
    part = SupervisionSet.from_segments([SupervisionSegment("u", "r", start=0.2, duration=0.5, speaker="s")])
    with pytest.raises(UserError, match="covers 0.200-0.700 s of recording 'r'.*segments are not supported"):
        lhotse_to_data_dir(recordings, part)
    whole = SupervisionSet.from_segments([SupervisionSegment("u", "r", start=0, duration=1.0, speaker=None)])
    with pytest.raises(UserError, match="has no speaker"):
        lhotse_to_data_dir(recordings, whole)
    dd = lhotse_to_data_dir(recordings, SupervisionSet.from_segments([SupervisionSegment("u", "r", 0, 1.0, speaker="s")]))
    assert dd.wav == {"u": str(wav)} and dd.utt2spk == {"u": "s"}
