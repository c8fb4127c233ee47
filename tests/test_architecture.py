"""The house rules of docs/architecture.md ("Who may import whom"), checked on the imports of src/crdr.

Every ``import`` statement counts, those inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import crdr

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = sorted(p.stem for p in (SRC / "crdr").iterdir() if p.stem != "__init__" and not p.stem.startswith("."))

#: crdr package -> the other crdr packages it may import (its own and ``crdr`` itself, for ``__version__``,
#: always). The layers of docs/architecture.md, lowest first.
ALLOWED: dict[str, set[str]] = {
    "io": set(),
    "layers": set(),
    "package_data": {"io"},
    "models": {"layers"},
    "discriminators": {"layers"},
    "metrics": {"io"},
    "data": {"io"},
    "config": {"io", "models", "package_data"},
    "losses": {"metrics"},
    "loading": {"config", "io", "models", "package_data"},
    "codec": {"io", "loading", "models"},
    "lit": {"config", "data", "discriminators", "io", "loading", "losses", "metrics", "models"},
    "evaluation": {"codec", "config", "io", "loading", "metrics", "models"},
    "cli": set(PACKAGES) - {"cli"},
}
#: Third-party packages that only some crdr packages may import.
RESTRICTED: dict[str, set[str]] = {
    "lightning": {"lit", "cli"},
    "pytorch_lightning": set(),
    "hydra": {"config", "lit", "cli"},
    "lpips": {"metrics"},
}
#: Modules that must not import torch themselves (so ``crdr --help``, ``crdr data`` and the edges start fast).
TORCH_FREE = ["crdr.cli.parser", "crdr.cli.main", "crdr.cli.evaluate", "crdr.data", "crdr.io", "crdr.package_data"]
#: The training stream of crdr.data (crops, sampling, shards) and image decoding are torch's.
TORCH_FREE_EXCEPT = {"crdr.data.crops", "crdr.data.sampling", "crdr.data.shards", "crdr.io.images"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` (the code of ``module``) imports; ``from crdr import X``
    resolves X through crdr's lazy exports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base == "crdr":
                found.update(crdr._EXPORTS.get(alias.name, "crdr") for alias in node.names)
            else:
                found.add(base)
    return found


def package_of(name: str) -> str | None:
    """``crdr.models.generator`` -> ``models``; ``crdr`` itself -> None."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


MODULES = {
    module_name(path): imports(path.read_text(), module_name(path), path.name == "__init__.py")
    for path in sorted((SRC / "crdr").rglob("*.py"))
}


def test_every_package_has_a_rule() -> None:
    assert set(ALLOWED) == set(PACKAGES)


def test_import_parser_resolves_relative_and_lazy_names() -> None:
    source = "from . import fourier\nfrom ..models import generator\nfrom crdr import load_model, __version__\n"
    assert imports(source, "crdr.layers.residual") == {"crdr.layers", "crdr.models", "crdr.loading.model", "crdr"}
    assert imports("def f():\n    import crdr.lit.gan\n", "crdr.models.generator") == {"crdr.lit.gan"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_crdr_imports_follow_the_layers(module: str) -> None:
    own = package_of(module)
    if own is None:
        return  # crdr/__init__: names its exports as strings, imports nothing of crdr
    allowed = ALLOWED[own] | {own}
    wrong = sorted(n for n in MODULES[module] if n.split(".")[0] == "crdr" and package_of(n) not in allowed | {None})
    assert not wrong, f"{module} imports {wrong}; crdr.{own} may import only {sorted(ALLOWED[own])}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_restricted_third_party_imports(module: str) -> None:
    own = package_of(module)
    wrong = sorted(
        n for n in MODULES[module] if n.split(".")[0] in RESTRICTED and own not in RESTRICTED[n.split(".")[0]]
    )
    assert not wrong, f"{module} imports {wrong}"


def test_nothing_below_cli_imports_cli() -> None:
    assert not [package for package, allowed in ALLOWED.items() if "cli" in allowed]


@pytest.mark.parametrize("prefix", TORCH_FREE)
def test_torch_free_modules(prefix: str) -> None:
    members = [m for m in MODULES if (m == prefix or m.startswith(prefix + ".")) and m not in TORCH_FREE_EXCEPT]
    assert members
    wrong = sorted(m for m in members if any(n.split(".")[0] == "torch" for n in MODULES[m]))
    assert not wrong, f"{wrong} import torch"


#: Lightning's private attributes (connectors, loops' and modules' internals); only the adapter may touch them.
LIGHTNING_ADAPTER = "crdr.lit.lightning_internals"
LIGHTNING_PRIVATE = re.compile(r"_\w*_connector|_trainer|_results|_active_loop|_fabric|_batches_that_stepped")


def lightning_private_uses(source: str) -> list[str]:
    """Private Lightning names in ``source``: attributes like ``trainer._logger_connector`` and
    ``from lightning... import _NAME``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and LIGHTNING_PRIVATE.fullmatch(node.attr):
            found.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "lightning",
            "pytorch_lightning",
        ):
            found += [alias.name for alias in node.names if alias.name.startswith("_")]
    return found


def test_lightning_private_use_finder() -> None:
    source = "from lightning.fabric.utilities.types import _PATH\nx = self.trainer._logger_connector.flag\n"
    assert sorted(lightning_private_uses(source)) == ["_PATH", "_logger_connector"]
    assert lightning_private_uses("self._trainer_to_stop = None\nimport torch._dynamo\n") == []


@pytest.mark.parametrize("path", sorted((SRC / "crdr").rglob("*.py")), ids=lambda p: module_name(p))
def test_only_the_adapter_touches_lightning_internals(path: Path) -> None:
    uses = lightning_private_uses(path.read_text())
    assert module_name(path) == LIGHTNING_ADAPTER or not uses, (
        f"{module_name(path)} uses {uses}; go through {LIGHTNING_ADAPTER}"
    )
