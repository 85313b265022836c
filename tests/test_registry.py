"""The builder registry: bad option values are one-line user errors, a builder's bug keeps its traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dropclass_lib.errors import OptionValueError, UserError
from dropclass_lib.heads import build_head
from dropclass_lib.registry import Registry, check_bools, check_int_lists, check_ints, check_numbers, require
from test_training_data import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]


def make_registry() -> Registry:
    things = Registry("thing")

    @things.register("checked")
    class Checked:
        def __init__(self, size: int = 3):
            check_ints(size=size)
            self.size = size

    @things.register("typo")
    class Typo:  # a coding bug: an internal call with a wrong argument
        def __init__(self, size: int = 3):
            self.parts = list(range(size, "3"))

    @things.register("bad_internal_value")
    class BadInternalValue:  # a coding bug raising ValueError, not a user's value
        def __init__(self, size: int = 3):
            self.parts = int("three")

    return things


def test_an_option_value_error_is_prefixed_with_the_builder():
    things = make_registry()
    assert things.build("checked", size=4).build_spec == {"name": "checked", "kwargs": {"size": 4}}
    with pytest.raises(OptionValueError, match=r"^thing 'checked': size must be an integer >= 1, got -1$") as info:
        things.build("checked", size=-1)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("name, error", [("typo", TypeError), ("bad_internal_value", ValueError)])
def test_a_bug_in_a_builder_propagates_with_its_traceback(name, error):
    with pytest.raises(error) as info:
        make_registry().build(name)
    assert not isinstance(info.value, UserError)
    frames = [entry.name for entry in info.traceback]
    assert "__init__" in frames  # the traceback reaches the line inside the builder


@pytest.mark.parametrize("check, kwargs, message", [
    (check_ints, {"n": True}, "n must be an integer >= 1, got True"),
    (check_ints, {"n": "4"}, "n must be an integer >= 1, got '4'"),
    (check_int_lists, {"dims": []}, r"dims must be a non-empty list of integers >= 1, got \[\]"),
    (check_int_lists, {"dims": [4, 4.0]}, r"dims must be a non-empty list of integers >= 1, got \[4, 4.0\]"),
    (check_numbers, {"s": float("nan")}, "s must be a finite number, got nan"),
    (check_numbers, {"s": False}, "s must be a finite number, got False"),
    (check_bools, {"flag": 0}, "flag must be true or false, got 0"),
])
def test_checks_refuse_values_of_the_wrong_kind(check, kwargs, message):
    with pytest.raises(OptionValueError, match=f"^{message}$"):
        check(**kwargs)


def test_checks_accept_good_values_and_a_minimum():
    check_ints(n=1)
    check_ints(0, stride=0)
    check_int_lists(0, strides=(1, 0))
    check_numbers(s=30, m=0.2)
    check_bools(flag=False)
    require(True, "never raised")
    with pytest.raises(OptionValueError, match="^n must be an integer >= 2, got 1$"):
        check_ints(2, n=1)


@pytest.mark.parametrize("name, options, message", [
    ("softmax", {"bias": "no"}, "bias must be true or false"),
    ("xvector", {"hidden_dim": -8}, "hidden_dim must be an integer >= 1, got -8"),
    ("l2softmax", {"s": 0}, "scale s must be > 0, got 0"),
    ("amsoftmax", {"m": -0.2}, "margin m must be >= 0, got -0.2"),
    ("aamsoftmax", {"m": "0.2"}, "m must be a finite number, got '0.2'"),
    ("sphereface", {"gamma": None}, "gamma must be a finite number, got None"),
])
def test_bad_head_values_are_user_errors(name, options, message):
    with pytest.raises(OptionValueError, match=f"^head '{name}': {message}"):
        build_head(name, 8, 5, **options)


def test_a_head_over_one_class_is_refused():
    with pytest.raises(OptionValueError, match="num_classes must be an integer >= 2, got 1"):
        build_head("softmax", 8, 1)


def test_cli_reports_a_negative_model_dimension_in_one_line(tmp_path):
    data = make_feats_dir(tmp_path / "train", num_spk=4, utts_per_spk=2)
    conf = tmp_path / "bad.yaml"
    conf.write_text(yaml.safe_dump({
        "model": {"extractor": "tdnn", "extractor_opts": {"frame_dims": [8, 8, 8, 8, 16], "emb_dim": -12}},
        "data": {"batch_size": 2, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20, "num_workers": 0},
        "dropclass": {"num_drop": 0},
        "train": {"num_iters": 2}}))
    proc = subprocess.run([sys.executable, str(ROOT / "steps/train_xvector.py"), "--config", str(conf),
                           "--dir", str(tmp_path / "exp"), str(data)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == ["ERROR (train_xvector.py): extractor 'tdnn': emb_dim must be an integer >= 1, got -12"]
