"""YAML -> dataclass configs: unknown keys and wrong types name the file and line."""

from __future__ import annotations

import dataclasses

import pytest

from dropclass_lib.config import load_config, save_config
from dropclass_lib.errors import InputFileError, UserError


@dataclasses.dataclass
class Optim:
    lr: float = 0.1
    steps: list[int] = dataclasses.field(default_factory=lambda: [10, 20])


@dataclasses.dataclass
class Conf:
    name: str = "xvector"
    batch_size: int = 128
    use_gpu: bool = False
    margin: float | None = None
    optim: Optim = dataclasses.field(default_factory=Optim)

    def validate(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


def write(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    return tmp_path / "c.yaml"


def test_load_with_defaults_and_overrides(tmp_path):
    p = write(tmp_path, "name: etdnn\noptim:\n  lr: 1   # int accepted for a float\n")
    c = load_config(p, Conf, {"optim.steps": [5], "margin": 0.2})
    assert c == Conf(name="etdnn", margin=0.2, optim=Optim(lr=1.0, steps=[5]))
    assert isinstance(c.optim.lr, float)
    save_config(c, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml", Conf) == c


@pytest.mark.parametrize("text, message", [
    ("name: a\noptim:\n  lrr: 0.1\n", r"c.yaml:3: unknown config key 'optim.lrr'"),
    ("batch_size: 12.5\n", r"c.yaml:1: batch_size: expected int, got 12.5"),
    ("use_gpu: 1\n", r"c.yaml:1: use_gpu: expected bool, got 1"),
    ("batch_size: true\n", r"c.yaml:1: batch_size: expected int, got True"),
    ("optim: 3\n", r"c.yaml:1: optim: expected a mapping"),
    ("optim:\n  steps: [1, x]\n", r"c.yaml:2: optim.steps\[1\]: expected int"),
    ("name: [unclosed\n", r"c.yaml:2: invalid YAML"),
    ("- a\n- b\n", r"c.yaml:1: the top level must be a mapping"),
])
def test_bad_config(tmp_path, text, message):
    with pytest.raises(InputFileError, match=message):
        load_config(write(tmp_path, text), Conf)


def test_exponent_floats_and_override_errors(tmp_path):
    p = write(tmp_path, "name: a\noptim:\n  lr: 1e-3\n")
    assert load_config(p, Conf).optim.lr == pytest.approx(0.001)  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(InputFileError, match=r"c.yaml: optim.lr: expected float") as info:
        load_config(p, Conf, {"optim.lr": "fast"})
    assert info.value.lineno is None  # not the file's line 3: the bad value came from the override


def test_validate_hook_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="batch_size must be >= 1"):
        load_config(write(tmp_path, "batch_size: 0\n"), Conf)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.yaml", Conf)
