"""The package's layout holds: no import cycles, an engine that imports nothing from
Django (and so runs in a training worker with no Django settings), one registry of kinds
that the models follow, and a public surface that imports."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dual_storage_app
from dual_storage_app.kinds import KINDS, REGISTRY, kinds_on, spec_for
from dual_storage_app.testing.server import LocalS3Server

PACKAGE = Path(dual_storage_app.__file__).parent
ROOT = PACKAGE.parent
# The engine's one import from Django: a decorator that reads no settings (see redaction).
ENGINE_DJANGO_ALLOWED = {
    "dual_storage_app.store.redaction": {
        "django.views.decorators.debug",
        "django.views.decorators.debug.sensitive_variables",
    }
}
# What the engine may import from the rest of the package: the layers below it.
ENGINE_MAY_IMPORT = (
    "dual_storage_app.store",
    "dual_storage_app.config.stores",
    "dual_storage_app.config.providers",
    "dual_storage_app.exceptions",
    "dual_storage_app.keys",
    "dual_storage_app.kinds",
)


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports (anywhere in its body, functions included)."""
    names: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(package)
    return {
        name: {target for target in _imports(name, path) if target in modules and target != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the package
    assert _cycles(graph) == []


def test_the_bench_has_no_import_cycles() -> None:
    graph = _graph(ROOT / "bench")
    assert graph.get("bench.lineup")  # the walk found the module and its imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a planted cycle is reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_engine_imports_nothing_from_django_or_the_layers_above() -> None:
    modules = _modules()
    engine = {
        name: path for name, path in modules.items() if name.startswith("dual_storage_app.store")
    }
    assert "dual_storage_app.store.facade" in engine
    for name, path in engine.items():
        imported = _imports(name, path)
        django = {target for target in imported if target.split(".")[0] == "django"}
        assert django <= ENGINE_DJANGO_ALLOWED.get(name, set()), name
        ours = {target for target in imported if target in modules}
        above = {target for target in ours if not target.startswith(ENGINE_MAY_IMPORT)}
        assert above == set(), f"{name} imports {above}"


def test_only_the_engine_talks_to_s3() -> None:
    """boto3 and s3transfer are imported by the engine (and the test servers) only;
    configuration may use botocore's Config and validators, nothing above it may."""
    for name, path in _modules().items():
        imported = {target.split(".")[0] for target in _imports(name, path)}
        if name.startswith(("dual_storage_app.store", "dual_storage_app.testing")):
            continue
        assert not imported & {"boto3", "s3transfer"}, name
        if name not in ("dual_storage_app.config.providers", "dual_storage_app.config.validation"):
            assert "botocore" not in imported, name


@pytest.mark.real_s3
def test_the_client_works_in_a_process_without_django_settings(
    s3_servers: dict[str, LocalS3Server], tmp_path: Path
) -> None:
    """A training worker: environment variables only, no DJANGO_SETTINGS_MODULE."""
    internal, external = s3_servers["internal"], s3_servers["external"]
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE" and not key.startswith(("INTERNAL_", "EXTERNAL_"))
    }
    env.update(
        INTERNAL_STORAGE_ENDPOINT=internal.endpoint_url,
        INTERNAL_STORAGE_ACCESS_KEY=internal.access_key,
        INTERNAL_STORAGE_SECRET_KEY=internal.secret_key,
        EXTERNAL_STORAGE_ENDPOINT=external.endpoint_url,
        EXTERNAL_STORAGE_ACCESS_KEY=external.access_key,
        EXTERNAL_STORAGE_SECRET_KEY=external.secret_key,
    )
    script = """
import sys
from pathlib import Path
from dual_storage_app.client import dual_storage
source, dest = Path(sys.argv[1]), Path(sys.argv[2])
dual_storage.create_buckets()
up = dual_storage.upload_weight(file_path=source, weight_key="worker/w.pth")
down = dual_storage.download_weight(weight_key="worker/w.pth", dest_path=dest)
assert up.sha256 == down.sha256 and dest.read_bytes() == source.read_bytes()
from django.conf import settings
print("configured" if settings.configured else "no django settings", up.size)
"""
    source = tmp_path / "w.pth"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    result = subprocess.run(
        [sys.executable, "-c", script, str(source), str(tmp_path / "out.pth")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["no", "django", "settings", str(3 * 1024 * 1024)]


def test_one_registry_of_kinds_drives_the_models_and_stores() -> None:
    from dual_storage_app.models import ARTIFACT_MODELS

    assert KINDS == ("weights", "checkpoints", "schemas", "datasets")
    assert tuple(ARTIFACT_MODELS) == KINDS
    for kind, model in ARTIFACT_MODELS.items():
        spec = REGISTRY[kind]
        assert (model.kind, model.__name__) == (kind, spec.model_name)
        assert model(name="x").store_name == spec.store
        # The fields that name a key segment (a job id, a schema name) get a value.
        row = model(name="x", **{f: "x" for f in ("job_id", "framework") if hasattr(model, f)})
        assert row.file.field.generate_filename(row, "a.bin").split("/")[0] == spec.key_prefix
    assert kinds_on("external") == ("datasets",)
    assert kinds_on("internal") == ("weights", "checkpoints", "schemas")


def test_an_unknown_kind_names_the_known_ones() -> None:
    from dual_storage_app.exceptions import InvalidArgument

    with pytest.raises(InvalidArgument, match="use one of weights, checkpoints, schemas, datasets"):
        spec_for("models")
    with pytest.raises(InvalidArgument):
        spec_for(3)


def test_every_public_name_imports() -> None:
    assert dual_storage_app.PUBLIC_API  # the one list of what users import
    for module_name, names in dual_storage_app.PUBLIC_API.items():
        module = importlib.import_module(module_name)
        missing = [name for name in names if not hasattr(module, name)]
        assert missing == [], module_name


def test_the_process_wide_client_is_typed_with_reset() -> None:
    """``dual_storage`` is a real ``DualStorageClient`` whose ``reset()`` type-checks."""
    from dual_storage_app.client import DualStorageClient, LazyDualStorageClient, dual_storage

    assert isinstance(dual_storage, DualStorageClient)
    assert isinstance(dual_storage, LazyDualStorageClient)
    dual_storage.reset()
    assert repr(dual_storage) == "<lazy dual_storage: unconfigured>"
