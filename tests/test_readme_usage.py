"""The README's "Using a trained model" section runs as written, against a tiny model package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import soundfile

from conftest import ROOT
from model_package import make_package, word

SECTION = "## Using a trained model"


def section_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block of the section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    body = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```(\w+)\n(.*?)^```$", body, flags=re.MULTILINE | re.DOTALL)


def test_the_section_has_python_and_shell_examples():
    languages = [lang for lang, _ in section_blocks()]
    assert languages.count("python") >= 3 and "sh" in languages and set(languages) <= {"python", "sh"}


def test_readme_examples_run(tmp_path, monkeypatch):
    exp, _ = make_package(tmp_path / "made")
    # The README's placeholder paths, relative to where the user runs them.
    run = tmp_path / "run"
    shutil.copytree(exp, run / "exp" / "baseline" / "seed1")
    rng = np.random.default_rng(5)
    soundfile.write(run / "enrol.wav", word(180.0, rng), 16000)
    soundfile.write(run / "test.wav", word(185.0, rng, rate=22050), 22050)   # resampled by the API
    monkeypatch.chdir(run)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    namespace: dict = {}
    for lang, code in section_blocks():
        if lang == "python":
            exec(compile(code, "README.md", "exec"), namespace)
        else:
            # The steps are run from the project root in the README; here their path is made absolute.
            script = re.sub(r"^steps/", f"{ROOT}/steps/", code, flags=re.MULTILINE)
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    assert (run / "extractor.onnx").is_file() and (run / "extractor.ts").is_file()
    # What the examples compute agrees: the API's embedding, the torch module's, the exported files'.
    emb = namespace["emb"].numpy()
    np.testing.assert_allclose(namespace["test"], emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(namespace["emb_onnx"], emb, atol=1e-3)
    np.testing.assert_allclose(namespace["emb_ts"].detach().numpy(), emb, atol=1e-3)
    assert namespace["embeddings"].shape == (2, emb.size)
