"""engine/ must never import Qt: checked statically and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO_ROOT

QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "qasync", "shiboken6")


def test_engine_sources_do_not_import_qt():
    offenders = []
    for path in (REPO_ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in QT_MODULES]
    assert not offenders, offenders


def test_importing_engine_loads_no_qt():
    code = (
        "import sys, pkgutil, importlib, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def imports_of(path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved against app.*)."""
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names += [module] + [f"{module}.{a.name}" for a in node.names]
    return names


def test_app_state_imports_no_qt():
    """app.state is the editor's Qt-free state (napari's components/)."""
    offenders = [
        f"{path}: {name}"
        for path in (REPO_ROOT / "app" / "state").rglob("*.py")
        for name in imports_of(path)
        if name.split(".")[0] in QT_MODULES
    ]
    assert not offenders, offenders


def test_app_state_loads_with_qt_blocked():
    """Every app.state module imports in a process where importing PySide6 raises."""
    code = (
        "import sys, pkgutil, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {QT_MODULES!r}:\n"
        "            raise ImportError(f'{name} is blocked: app.state must not import Qt')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import app.state\n"
        "for m in pkgutil.walk_packages(app.state.__path__, 'app.state.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_views_do_not_import_the_studio():
    """Widgets and dialogs take the models they show; only the main window knows the Studio."""
    views = [*(REPO_ROOT / "app" / "widgets").glob("*.py"), REPO_ROOT / "app" / "model_manager.py"]
    offenders = [
        f"{path.name}: {name}"
        for path in views
        for name in imports_of(path)
        if name.startswith(("app.studio", "app.generation", "app.project_io"))
    ]
    assert not offenders, offenders
