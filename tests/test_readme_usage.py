"""The README's "Using a trained model" and "Adapting to your own speakers" sections run as
written, against a tiny model package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import soundfile
import yaml

from conftest import ROOT, load_script
from model_package import make_package, word

SECTION = "## Using a trained model"
ADAPT_SECTION = "## Adapting to your own speakers"


def section_blocks(section: str = SECTION) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block of the section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    body = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```(\w+)\n(.*?)^```$", body, flags=re.MULTILINE | re.DOTALL)


def run_blocks(section: str) -> dict:
    """Run the section's blocks in order in the current directory: python in one namespace
    (returned), sh through bash with the project's steps on their README paths."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    namespace: dict = {}
    for lang, code in section_blocks(section):
        if lang == "python":
            exec(compile(code, "README.md", "exec"), namespace)
        else:
            # The steps are run from the project root in the README; here their path is made absolute.
            script = re.sub(r"^(\s*)steps/", rf"\1{ROOT}/steps/", code, flags=re.MULTILINE)
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    return namespace


def test_the_section_has_python_and_shell_examples():
    languages = [lang for lang, _ in section_blocks()]
    assert languages.count("python") >= 3 and "sh" in languages and set(languages) <= {"python", "sh"}
    languages = [lang for lang, _ in section_blocks(ADAPT_SECTION)]
    assert languages.count("sh") >= 2 and "python" in languages and set(languages) <= {"python", "sh"}


def test_readme_examples_run(tmp_path, monkeypatch):
    exp, _ = make_package(tmp_path / "made")
    # The README's placeholder paths, relative to where the user runs them.
    run = tmp_path / "run"
    shutil.copytree(exp, run / "exp" / "baseline" / "seed1")
    rng = np.random.default_rng(5)
    soundfile.write(run / "enrol.wav", word(180.0, rng), 16000)
    soundfile.write(run / "test.wav", word(185.0, rng, rate=22050), 22050)   # resampled by the API
    monkeypatch.chdir(run)
    namespace = run_blocks(SECTION)
    assert (run / "extractor.onnx").is_file() and (run / "extractor.ts").is_file()
    # What the examples compute agrees: the API's embedding, the torch module's, the exported files'.
    emb = namespace["emb"].numpy()
    np.testing.assert_allclose(namespace["test"], emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(namespace["emb_onnx"], emb, atol=1e-3)
    np.testing.assert_allclose(namespace["emb_ts"].detach().numpy(), emb, atol=1e-3)
    assert namespace["embeddings"].shape == (2, emb.size)


def test_readme_adaptation_examples_run(tmp_path, monkeypatch):
    made = tmp_path / "made"
    exp, _ = make_package(made)
    train = made / "work" / "data_no_sil"
    load_script("steps/make_model_package.py").main(["--lda-dim", "2", str(exp), str(train)])
    # The README's paths where a user runs them: the package, its training data, the recipe's
    # DropAdapt settings sized for the tiny three-speaker model, a corpus of two new speakers.
    run = tmp_path / "run"
    shutil.copytree(exp, run / "exp" / "baseline" / "seed1")
    shutil.copytree(train, run / "data" / "train_no_sil")
    conf = yaml.safe_load((ROOT / "conf" / "dropadapt.yaml").read_text())
    conf["adapt"].update(num_rounds=1, num_drop=1, its_per_drop=4, min_remaining=2, train_utts_for_plot=4)
    conf["data"].update(sampler="random", batch_size=4, min_frames=20, max_frames=30, min_utt_frames=20,
                        num_workers=0)
    conf["train"].update(checkpoint_every=4)
    (run / "conf").mkdir()
    (run / "conf" / "dropadapt.yaml").write_text(yaml.safe_dump(conf))
    rng = np.random.default_rng(6)
    for spk, f0 in {"dave": 140.0, "erin": 220.0}.items():
        (run / "my_speakers" / spk).mkdir(parents=True)
        for i in range(3):
            soundfile.write(run / "my_speakers" / spk / f"{i}.wav", word(f0 * (1 + 0.02 * i), rng), 16000)
    (run / "my_trials.txt").write_text("dave/0.wav dave/1.wav target\ndave/0.wav erin/0.wav nontarget\n"
                                       "erin/1.wav erin/2.wav target\nerin/1.wav dave/2.wav nontarget\n")
    monkeypatch.chdir(run)
    namespace = run_blocks(ADAPT_SECTION)
    for system in ("seed1", "seed1_adapted", "seed1_backend_adapted"):
        results = (run / "exp" / "my_speakers" / system / "results.txt").read_text()
        assert "plda" in results and "cosine_dm" in results, results
    assert (run / "exp" / "baseline" / "seed1_adapted" / "adapt" / "dropadapt" / "final.pt").is_file()
    record = yaml.safe_load((run / "exp" / "baseline" / "seed1_backend_adapted" / "adaptation.yaml").read_text())
    assert record["dropadapt"] is False and record["backend_adapt"] == "both" and record["adaptation_utterances"] == 6
    assert np.isfinite(namespace["llr"])
