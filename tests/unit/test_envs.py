"""Conda environments (envs/*.yaml): every rule names one, and it lists every package its code imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src"
PACKAGE_OF_MODULE = {"yaml": "pyyaml", "jinja2": "jinja2", "markupsafe": "jinja2"}
PROVIDED_BY_PYTHON = set(sys.stdlib_module_names) | {"mednca", "snakemake"}


def rule_blocks() -> dict[str, str]:
    """Each rule's text, by rule name, from the workflow's rule files."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for match in re.finditer(
            r"^rule (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), re.MULTILINE | re.DOTALL
        ):
            blocks[match[1]] = match[2]
    return blocks


def module_path(module: str) -> Path | None:
    """The file of a mednca module (a module file or a package's __init__), or None."""
    base = SOURCE.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports_of(path: Path, seen: set[Path]) -> set[str]:
    """Top-level third-party modules imported by a file and, recursively, by the mednca modules it imports."""
    if path in seen:
        return set()
    seen.add(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("mednca"):
                target = module_path(name)
                found |= imports_of(target, seen) if target else set()
            elif name.startswith("torch.utils.tensorboard"):
                found |= {"torch", "tensorboard"}
            else:
                found.add(name.split(".")[0])
    return found - PROVIDED_BY_PYTHON


def listed_packages(env_file: Path) -> set[str]:
    """Package names in a conda environment file, conda and pip entries alike (versions dropped)."""
    listed = set()
    for entry in yaml.safe_load(env_file.read_text())["dependencies"]:
        entries = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in entries:
            if not item.startswith("-"):
                listed.add(re.split(r"[=<>!]", item)[0].strip().lower())
    return listed


RULES = rule_blocks()
#: The torch rules name ``TORCH_ENV`` (common.smk): the CPU environment, or the CUDA one for a GPU config.
TORCH_ENVS = ("../../envs/train.yaml", "../../envs/train-cuda.yaml")


def environment_files(block: str) -> list[Path]:
    """The conda environment files a rule can run in."""
    named = re.search(r"conda:\n\s+(\S+)", block)
    assert named, "no conda environment"
    names = TORCH_ENVS if named[1] == "TORCH_ENV" else (named[1].strip('"'),)
    return [(ROOT / "workflow" / "rules" / name).resolve() for name in names]


def test_cuda_environment_is_the_cpu_one_with_a_cuda_torch() -> None:
    cpu, cuda = (
        yaml.safe_load((ROOT / "envs" / name).read_text()) for name in ("train.yaml", "train-cuda.yaml")
    )
    cpu_pip, cuda_pip = (
        next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)) for env in (cpu, cuda)
    )
    assert cpu_pip == ["--extra-index-url https://download.pytorch.org/whl/cpu", *cuda_pip]
    assert [d for d in cpu["dependencies"] if isinstance(d, str)] == [
        d for d in cuda["dependencies"] if isinstance(d, str)
    ]


def test_every_rule_with_a_script_names_a_pinned_environment() -> None:
    for block in (block for block in RULES.values() if "script:" in block):
        for env_file in environment_files(block):
            dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
            pinned = [d for d in dependencies if isinstance(d, str) and d not in ("pip",)]
            assert all("=" in d for d in pinned), f"{env_file.name}: unpinned {pinned}"


@pytest.mark.parametrize("rule", sorted(name for name, block in RULES.items() if "script:" in block))
def test_environment_lists_what_the_rule_imports(rule: str) -> None:
    block = RULES[rule]
    script = (ROOT / "workflow" / "rules" / re.search(r'script:\n\s+"(.+?)"', block)[1]).resolve()
    needed = {PACKAGE_OF_MODULE.get(module, module) for module in imports_of(script, set())}
    for env_file in environment_files(block):
        missing = needed - listed_packages(env_file)
        assert not missing, f"{env_file.name} lacks {sorted(missing)} imported by rule {rule}"
