"""Which library files a workflow script runs, so that a rule can declare them as inputs.

A change of the library's code then re-runs exactly the jobs that execute the changed file, through
Snakemake as through ``dvc repro`` (which runs Snakemake's targets). Imports are read statically (every
``import mednca...`` anywhere in a file, also inside functions), so planning a workflow imports no torch.

A job of one model runs only that model's architecture code: the modules in ``MODEL_MODULES`` of the
other models are left out of its dependencies, so a change of the UNet's code retrains the UNets and
nothing else.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from mednca.names import MODEL_MODULES, base_model

PACKAGE = "mednca"
PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of the ``mednca`` package that runs (``src/mednca`` in an editable install)."""


def module_file(module: str) -> Path | None:
    """The source file of a ``mednca`` module or package, or None when it is not one of the package's."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """'mednca.a.b' -> ['mednca', 'mednca.a', 'mednca.a.b']: importing a module runs its packages first."""
    parts = module.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


@functools.cache
def imported_modules(path: Path) -> tuple[str, ...]:
    """The ``mednca`` modules a source file imports (``from mednca.x import y``: y too if a module)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    package = _package_of(Path(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(node, package)
            found.append(origin)
            found += [f"{origin}.{alias.name}" for alias in node.names]
    modules = {parent for name in found for parent in _with_parents(name) if module_file(parent) is not None}
    return tuple(sorted(modules))


def _package_of(path: Path) -> str:
    """The dotted package a file of the ``mednca`` package belongs to ('' for a file outside it)."""
    try:
        relative = path.resolve().parent.relative_to(PACKAGE_DIR)
    except ValueError:
        return ""
    return ".".join((PACKAGE, *relative.parts))


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module name of ``from ... import`` (relative imports resolved against ``package``)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(part for part in (*parts, node.module or "") if part)


def library_files(script: Path, model: str | None = None) -> list[str]:
    """Every ``mednca`` source file that ``script`` imports, directly or through other modules, sorted.

    With ``model`` (a configuration name, fine-tuned names included), the architecture modules of the
    other models are left out, with what only they import.
    """
    excluded = set() if model is None else _other_models_modules(base_model(model))
    seen: set[str] = set()
    pending = [module for module in imported_modules(Path(script)) if module not in excluded]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        file = module_file(module)
        pending += [name for name in imported_modules(file) if name not in seen and name not in excluded]
    return sorted(str(module_file(module)) for module in seen)


def _other_models_modules(model: str) -> set[str]:
    """The architecture modules of every model but ``model`` (a module two models share stays in)."""
    own = set(MODEL_MODULES.get(model, ()))
    return {module for modules in MODEL_MODULES.values() for module in modules} - own
