"""docs/ARCHITECTURE.md stays true: every library module has its paragraph, every path it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
LIB = ROOT / "dropclass_lib"
# a backticked name is a path of the repository when it starts with one of its source folders
# or names a script; output names (exp/RESULTS.md, final.pt, DIR/.lock) are neither
SOURCE_DIRS = ("dropclass_lib", "steps", "utils", "local", "egs", "bench", "tests", "docs", "conf")
SCRIPT = re.compile(r"\.(py|sh)$")


def named() -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", DOC.read_text(encoding="utf-8")))


def repo_paths(names: set[str]) -> set[str]:
    return {n for n in names if ("/" in n and n.split("/", 1)[0] in SOURCE_DIRS) or SCRIPT.search(n)}


def library_parts() -> list[str]:
    """Every module file and every folder of dropclass_lib/, as the doc must name them."""
    parts = []
    for path in sorted(LIB.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if "__pycache__" in path.parts:
            continue
        if path.is_dir():
            parts.append(rel + "/")
        elif path.suffix == ".py" and not (path.name == "__init__.py" and path.parent != LIB):
            parts.append(rel)  # a subpackage's __init__.py is covered by naming its folder
    return parts


def test_every_module_and_subpackage_of_the_library_is_named():
    names = named()
    missing = [part for part in library_parts() if part not in names]
    assert not missing, f"docs/ARCHITECTURE.md has no paragraph for {missing}"


def test_every_path_the_doc_names_exists():
    paths = repo_paths(named())
    assert "dropclass_lib/provenance.py" in paths and "run.sh" in paths  # the rule finds the doc's paths
    gone = sorted(p for p in paths if not list(ROOT.glob(p.rstrip("/"))))
    assert not gone, f"docs/ARCHITECTURE.md names paths that do not exist: {gone}"


def test_the_rules_tell_paths_from_output_names():
    assert repo_paths({"egs/voxceleb/", "local/prepare_*.py", "path.sh", "exp/RESULTS.md", "final.pt",
                       "DIR/.lock", "dropclass_lib.cli.run_main"}) == {"egs/voxceleb/", "local/prepare_*.py", "path.sh"}
    parts = library_parts()
    assert "dropclass_lib/__init__.py" in parts and "dropclass_lib/models/" in parts
    assert "dropclass_lib/models/__init__.py" not in parts and "dropclass_lib/conf/" in parts


def test_readme_layout_links_the_architecture():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/ARCHITECTURE.md)" in layout
