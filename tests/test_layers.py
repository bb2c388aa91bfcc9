"""The direction of imports: the app never imports the jobs side, and the engine imports no models, Session or Flask.

Read from the source (every import statement, also those inside functions), so a cycle cannot hide in a
function body; and checked once for real, in a fresh interpreter.
"""
import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

ENGINE_MAY_NOT_IMPORT = ("app.models", "app.services", "app.extensions", "app.blueprints", "app.web", "flask",
                         "sqlalchemy", "jobs")
# jobs -> services/engine (with the models, the extensions and the settings they need); `app` for create_app.
JOBS_MAY_IMPORT = ("app.config", "app.extensions", "app.services", "app.engine", "app.models", "app.timeutil")


def _imports(package: str) -> list[tuple[str, str]]:
    """(module file, imported module) for every import statement under `package`."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


def _within(module: str, prefixes) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_the_app_never_imports_the_jobs_side():
    assert [(path, module) for path, module in _imports("app") if _within(module, ["jobs"])] == []


def test_the_engine_imports_no_models_session_or_flask():
    found = [(path, module) for path, module in _imports("app/engine") if _within(module, ENGINE_MAY_NOT_IMPORT)]
    assert found == []


def test_the_jobs_side_reaches_the_app_only_through_services_engine_models_and_extensions():
    found = [(path, module) for path, module in _imports("jobs")
             if _within(module, ["app"]) and module != "app" and not _within(module, JOBS_MAY_IMPORT)]
    assert found == []


@pytest.mark.parametrize("module", ["app", "app.cli", "app.services.execution.executor", "app.web.errors"])
def test_importing_the_app_side_loads_nothing_from_jobs(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'jobs' or m.startswith('jobs.')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_worker_and_scheduler_commands_are_on_the_composition_root(tmp_path):
    env = {**os.environ, "FLOWDESK_INSTANCE": str(tmp_path), "SECRET_KEY": "test-secret"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"worker", "scheduler", "users", "workflows", "runs", "demo", "db"} <= commands
