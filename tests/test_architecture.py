"""The boundaries the architecture promises, checked on the source itself.

A service never imports another service; libs/ never imports a service at all (nor
loads one by name); only the composition root (services/bootstrap.py) sees them all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.platform.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"
LIBS = ROOT / "libs"


def _python_files(folder: Path) -> Iterator[Path]:
    yield from (p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _loaded_by_name(path: Path) -> Iterator[str]:
    """String arguments of importlib.import_module / __import__ / find_spec calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name not in ("import_module", "__import__", "find_spec"):
            continue
        for argument in node.args[:1]:
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield argument.value
            elif isinstance(argument, ast.JoinedStr):
                yield "".join(
                    part.value for part in argument.values if isinstance(part, ast.Constant)
                )


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def test_no_service_imports_another_service() -> None:
    crossings = []
    for folder in sorted(p for p in SERVICES.iterdir() if (p / "__init__.py").exists()):
        for path in _python_files(folder):
            is_test = "tests" in path.relative_to(folder).parts
            for module in _imported_modules(path):
                other = _service_of(module)
                if other is None or other == folder.name:
                    continue
                # Tests may start the platform as the composition root wires it.
                if is_test and other == "bootstrap":
                    continue
                crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert crossings == []


def test_libs_never_import_or_load_a_service() -> None:
    found = []
    for path in _python_files(LIBS):
        for module in _imported_modules(path):
            if module == "services" or module.startswith("services."):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
        for name in _loaded_by_name(path):
            if name.startswith("services"):
                found.append(f"{path.relative_to(ROOT)} loads {name!r} by name")
    assert found == []


def test_the_checks_above_see_a_crossing_when_there_is_one(tmp_path: Path) -> None:
    # The walkers must find what they look for, or the two tests above prove nothing.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import importlib\n"
        "from services.contacts.domain import Customer\n"
        "importlib.import_module(f'services.{name}.app')\n",
        encoding="utf-8",
    )

    assert "services.contacts.domain" in set(_imported_modules(sample))
    assert list(_loaded_by_name(sample)) == ["services..app"]


def test_every_service_folder_with_code_is_declared_in_the_composition_root() -> None:
    from services.bootstrap import SERVICES as DECLARED

    declared = {service.name for service in DECLARED}
    folders = {p.name for p in SERVICES.iterdir() if (p / "service.py").exists()}
    assert folders == declared


def test_every_writing_service_names_the_operators_schema_url_in_its_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One relay for all: each writing service's events name their schema where the
    operator serves it (``EVENT_SCHEMA_BASE_URL``), not where the catalogue would."""
    monkeypatch.setenv("EVENT_SCHEMA_BASE_URL", "http://gateway:8000/events")
    from libs.platform.relay import service_relay
    from services.bootstrap import SERVICES as DECLARED

    writers = {d.name: d for d in DECLARED if d.publishes is not None}
    assert {"contacts", "pipeline", "tickets", "loyalty", "alerts", "analytics"} <= set(writers)
    for name, declaration in writers.items():
        settings = declaration.settings(database_url="sqlite+aiosqlite:///:memory:")
        relay = service_relay(declaration, settings, create_engine(settings.database_url))
        type_name = f"crm.{name}.something_happened.v1"
        assert relay.schema_url(type_name) == f"http://gateway:8000/events/{type_name}.json", name


def test_every_operation_is_declared_on_the_platforms_router() -> None:
    """``ServiceRouter``: so that every operation refuses a NUL character (a 422, after
    authorising its caller) instead of a 500 from PostgreSQL."""
    routing = LIBS / "platform" / "routing.py"
    plain = [
        str(path.relative_to(ROOT))
        for folder in (SERVICES, LIBS)
        for path in _python_files(folder)
        if "tests" not in path.parts
        and path != routing
        and "APIRouter(" in path.read_text(encoding="utf-8")
    ]
    assert plain == []


# --- one shape (the README's Layout) ----------------------------------------------------

# What a service folder holds: the README's file list, each role a file or, grown, a
# folder of the same name.
SHAPE = {
    "__init__.py",
    "service.py",
    "settings.py",
    "app.py",
    "domain.py",
    "domain",
    "commands.py",
    "api.py",
    "api",
    "handlers.py",
    "handlers",
    "read_model.py",
    "read_model",
    "migrations",
    "tests",
}
# Besides the shape: the gateway's edge (no domain of its own: forwarding, sign-in,
# rate limits, the console it serves) and alerts' notifications, a folder of the same
# shape inside it (checked below).
BESIDE_THE_SHAPE = {
    "gateway": {
        "api_keys.py",
        "authentication.py",
        "console",
        "console.py",
        "open_resources.py",
        "openapi.py",
        "proxy",
        "rate_limit.py",
        "routes.py",
        "sessions.py",
        "single_sign_on.py",
        "users.py",
    },
    "alerts": {"notifications"},
}
NESTED = [SERVICES / "alerts" / "notifications"]


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "__pycache__"}


def test_every_service_folder_has_the_shape_the_readme_lists() -> None:
    found = {}
    for folder in sorted(p for p in SERVICES.iterdir() if p.is_dir() and p.name != "__pycache__"):
        extra = _entries(folder) - SHAPE - BESIDE_THE_SHAPE.get(folder.name, set())
        if extra:
            found[folder.name] = sorted(extra)
    for folder in NESTED:
        extra = _entries(folder) - SHAPE
        if extra:
            found[str(folder.relative_to(SERVICES))] = sorted(extra)
    assert found == {}


def test_a_role_is_a_file_or_a_folder_never_both() -> None:
    both = [
        f"{folder.relative_to(SERVICES)}/{role}"
        for folder in [*SERVICES.iterdir(), *NESTED]
        if folder.is_dir()
        for role in ("domain", "api", "handlers", "read_model")
        if (folder / role).is_dir() and (folder / f"{role}.py").exists()
    ]
    assert both == []


# A module past ~400 lines becomes a folder, a function past 80 is split. These were
# past it when the rule was written down (decision 0092): each may shrink, none grow,
# and no other may join them.
LONG_MODULES: dict[str, int] = {}
LONG_FUNCTIONS: dict[str, int] = {}


def _shipped_modules() -> Iterator[Path]:
    for folder in (LIBS, SERVICES, ROOT / "testing"):
        for path in _python_files(folder):
            parts = path.relative_to(ROOT).parts
            if "tests" not in parts and "versions" not in parts:
                yield path


def test_no_module_grows_past_400_lines_nor_a_function_past_80() -> None:
    modules, functions = {}, {}
    for path in _shipped_modules():
        name = str(path.relative_to(ROOT))
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > LONG_MODULES.get(name, 400):
            modules[name] = lines
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{name}:{node.name}"
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LONG_FUNCTIONS.get(key, 80):
                    functions[key] = length
    assert modules == {}, "past 400 lines: make it a folder (README, Layout)"
    assert functions == {}, "past 80 lines: split it"


# Projections whose ``apply_many`` folds a batch its own way (not one ``apply`` after
# another), and the test that runs both paths over the same events and compares what
# they leave. A new one fails the test below until it is listed with its test.
BOTH_PATHS_CHECKED = {
    "ChurnFacts": "services/alerts/tests/test_batched.py",
    "AnalyticsProjection": "services/analytics/tests/test_batch.py",
    "Customer360Projection": "services/customer360/tests/test_projection.py",
    "Earning": "services/loyalty/tests/test_batch.py",
    "WebhookDispatch": "services/alerts/tests/test_webhook_batches.py",
}


def _calls(function: ast.AST, method: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        for node in ast.walk(function)
    )


def _one_at_a_time(many: ast.AST) -> bool:
    """``apply_many`` is ``apply`` in a loop and nothing else of the batch: the two paths
    are one. (An ``apply`` that calls ``apply_many`` with one event is not: a batch of
    one can fold unlike a batch of many.)"""
    return any(
        isinstance(node, ast.AsyncFor | ast.For)
        and len(node.body) == 1
        and _calls(node.body[0], "apply")
        for node in ast.walk(many)
    )


def test_every_projection_that_folds_a_batch_its_own_way_is_checked_both_ways() -> None:
    folding = {}
    for path in _shipped_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            methods = {
                f.name: f
                for f in node.body
                if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if "apply_many" in methods and node.name != "Projection":
                if not _one_at_a_time(methods["apply_many"]):
                    folding[node.name] = str(path.relative_to(ROOT))
    assert set(folding) == set(BOTH_PATHS_CHECKED), folding
    for name, test in BOTH_PATHS_CHECKED.items():
        text = (ROOT / test).read_text(encoding="utf-8")
        assert "apply_many" in text or "assert_batches_fold_as_single_events" in text, name
