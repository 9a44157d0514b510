"""The front door stays findable: no `svt` module reaches into another one's private names, and
every module says what it holds (docs/architecture.md, "Adding a dataset")."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SVT = ROOT / "svt"
MODULES = sorted(SVT.rglob("*.py"))
#: A docstring that only repeats the module's dotted name (`"""datasets.tonas."""`).
PLACEHOLDER = re.compile(r"[A-Za-z0-9_.]+\.?")


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_module(node: ast.ImportFrom, path: Path) -> str:
    """The absolute name of the module an ImportFrom reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_cross_module_imports(path: Path, text: str | None = None) -> list[str]:
    """`from svt.x import _name` (or `import svt.x._private`) in the module at `path` (its source
    `text`, read from `path` when not given), for another module `svt.x`."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    found = []
    own = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = imported_module(node, path)
            if source.split(".")[0] != "svt" or source == own:
                continue
            found += [f"{relative(path)}:{node.lineno}: from {source} import {alias.name}"
                      for alias in node.names if alias.name.startswith("_")
                      and not alias.name.startswith("__")]
        elif isinstance(node, ast.Import):
            found += [f"{relative(path)}:{node.lineno}: import {alias.name}"
                      for alias in node.names if alias.name.split(".")[0] == "svt"
                      and any(part.startswith("_") and not part.startswith("__")
                              for part in alias.name.split("."))]
    return found


def test_the_check_finds_private_imports():
    path = SVT / "datasets" / "ssvd.py"  # only names the importing module
    text = ("from svt.datasets.layout import Problems, _hidden\n"
            "from .songs import _also\nfrom . import layout\nimport svt.data._private\n"
            "from svt.datasets.ssvd import _own\nfrom os.path import _get_sep\n")
    found = [line.split(": ", 1)[1] for line in private_cross_module_imports(path, text)]
    assert found == ["from svt.datasets.layout import _hidden",
                     "from svt.datasets.songs import _also", "import svt.data._private"]
    assert PLACEHOLDER.fullmatch("datasets.tonas.") and PLACEHOLDER.fullmatch("mir_st500")
    assert not PLACEHOLDER.fullmatch("TONAS: flamenco singing.")


def test_no_module_imports_another_modules_private_names():
    found = [line for path in MODULES for line in private_cross_module_imports(path)]
    assert not found, ("private names imported from other svt modules; make them public (named "
                       "for what they do, with a docstring) or keep their use inside their "
                       "module:\n" + "\n".join(found))


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_module_docstring_says_what_the_module_holds(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    if path.name == "__init__.py" and not path.read_text().strip():
        return  # an empty package marker
    assert docstring, f"{relative(path)} has no module docstring"
    assert not PLACEHOLDER.fullmatch(docstring.strip()), (
        f"{relative(path)}: the docstring {docstring!r} only names the module; say what it holds")


def test_common_is_split_and_adding_a_dataset_is_documented():
    assert not (SVT / "datasets" / "common.py").exists()
    text = (ROOT / "docs" / "architecture.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert "Adding a dataset" in headings
    position = headings.index("Adding a dataset")
    assert any(h.startswith("Adding an encoder") for h in headings[position - 1:position + 2])
    section = text.split("## Adding a dataset", 1)[1].split("\n## ", 1)[0]
    for name in ("svt/datasets/ssvd.py", "check_dataset_folders", "pair_audio_with_notes",
                 "prepare_evaluation_set", "prepare_folder", "label_frame_rate"):
        assert name in section, name
