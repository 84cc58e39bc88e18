"""The package layering the README writes down holds: every import in ``src/pseudo3d`` (at module
level, inside functions, or for type checking only) goes to the importing package's own layer or
a lower one, so the packages have no import cycles."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pseudo3d"


def _layers() -> list[set[str]]:
    line = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", (ROOT / "README.md").read_text()).group(1)
    return [set(group.strip(" `").split()) for group in line.split("→")]


def _unit(module: str) -> str:
    """``pseudo3d.pipelines.track`` → ``pipelines``: a subpackage or a top-level module."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "pseudo3d" \
                else [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.startswith("pseudo3d.") and name.count(".") >= 1)
    return found


def test_the_readme_layers_name_every_package_once():
    layers = _layers()
    named = [unit for layer in layers for unit in layer]
    present = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
               if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()}
    assert sorted(named) == sorted(present)


def test_every_import_goes_to_the_same_layer_or_a_lower_one():
    rank = {unit: index for index, layer in enumerate(_layers()) for unit in layer}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        source = _unit(".".join(relative.parts)) if len(relative.parts) > 1 else None
        if source is None or source == "__init__":
            continue
        for module in _imports(path):
            target = _unit(module)
            if target != source and rank[target] > rank[source]:
                upward.append(f"{path.relative_to(ROOT)} ({source}) imports {module} ({target})")
    assert upward == []
