"""Every step has --help; every step that loads a YAML config takes --set KEY=VALUE, and its
defaults come from the library, not from a recipe's conf/."""

from __future__ import annotations

import contextlib
import io

import pytest

from conftest import ROOT, load_script, run_cli
from dropclass_lib.features import CONF_DIR

STEPS = sorted(p.name for p in (ROOT / "steps").glob("*.py"))
CONFIGURABLE = {  # step: arguments after --set, with output paths under {tmp}
    "make_features.py": ["{tmp}/data", "{tmp}/feats"],
    "compute_vad.py": ["{tmp}/data", "{tmp}/feats"],
    "augment_data_dir.py": ["{tmp}/data", "{tmp}/aug"],
    "dropadapt.py": ["{tmp}/final.pt", "{tmp}/data", "{tmp}/data", "{tmp}/exp"],
    "train_xvector.py": ["--config", str(ROOT / "conf" / "train_baseline.yaml"), "{tmp}/data", "{tmp}/exp"],
}


@pytest.mark.parametrize("step", STEPS)
def test_help(step):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        load_script(f"steps/{step}").main(["--help"])
    assert exit_info.value.code == 0 and "usage:" in out.getvalue()


@pytest.mark.parametrize("step", sorted(CONFIGURABLE))
def test_set_overrides_a_config_key(step, tmp_path):
    args = [a.format(tmp=tmp_path) for a in CONFIGURABLE[step]]
    code, err = run_cli(f"steps/{step}", "--set", "no_such_key=1", *args)
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert "unknown config key 'no_such_key'" in err, err


def test_library_defaults_are_package_data():
    assert CONF_DIR == ROOT / "dropclass_lib" / "conf"
    assert sorted(p.name for p in CONF_DIR.glob("*.yaml")) == ["augment.yaml", "fbank.yaml", "mfcc.yaml", "vad.yaml"]
