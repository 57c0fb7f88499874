"""`aegen plugins new` (aegen/scaffold.py): the package it writes for each kind of component has
the entry point and the hook, is listed by aegen, and passes its own tests as written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from aegen.errors import UsageError
from aegen.scaffold import KINDS, MAX_NAME, new_plugin, render

from .conftest import run_aegen

# One name per kind; none is a built-in component's.
NAMES = {
    "sampler": "momentum",
    "schedule": "power",
    "architecture": "convae",
    "objective": "mask",
    "source": "imagelist",
}
REGISTERED = {
    "sampler": "samplers",
    "schedule": "schedules",
    "architecture": "architectures",
    "objective": "objectives",
    "source": "data_sources",
}


def installed_like_pip(report: dict, site: Path) -> str:
    """Make the package new_plugin reported importable as if pip had installed it: a dist-info
    in `site` with its entry point (test_the_pyproject_... checks pyproject.toml declares the
    same). Returns the PYTHONPATH entries: `site` and the package's src folder."""
    info = site / f"{report['module']}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {report['distribution']}\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[aegen]\n{report['name']} = {report['module']}\n")
    return os.pathsep.join([str(site), str(Path(report["path"]) / "src")])


def run_their_tests(reports: list[dict], site: Path, *pytest_args: str):
    """pytest on the generated packages' own tests, as they are, with the packages importable
    and registered (no pip: the quick tier stays offline and fast)."""
    path = os.pathsep.join(installed_like_pip(r, site) for r in reports)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    tests = [str(Path(r["path"]) / "tests") for r in reports]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    return subprocess.run(
        [*command, *tests], capture_output=True, text=True, env=env, cwd=site.parent, timeout=900
    )


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> list[dict]:
    """One generated package of every kind, as new_plugin reports it."""
    out = tmp_path_factory.mktemp("plugins")
    return [new_plugin(NAMES[kind], kind, dest=out) for kind in KINDS]


def test_every_kind_passes_its_own_tests(packages, tmp_path):
    """All of each package's tests but those that start `aegen generate` (slow tier)."""
    result = run_their_tests(packages, tmp_path / "site", "-k", "not aegen_generate")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout


@pytest.mark.slow
def test_every_kind_passes_its_tests_that_run_aegen_generate(packages, tmp_path):
    # the sampler's runs in the real install below; here the schedule's
    result = run_their_tests(packages, tmp_path / "site", "-k", "aegen_generate_with_the_schedule")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def test_the_report_and_the_package_layout(tmp_path):
    report = new_plugin("momentum", dest=tmp_path)
    folder = tmp_path / "aegen-momentum"
    assert report == {
        "path": str(folder),
        "name": "momentum",
        "kind": "sampler",
        "distribution": "aegen-momentum",
        "module": "aegen_momentum",
        "files": [
            "README.md",
            "pyproject.toml",
            "src/aegen_momentum/__init__.py",
            "tests/test_momentum.py",
        ],
    }
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == report["files"]


def test_the_pyproject_declares_the_entry_point_and_the_src_layout(tmp_path):
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    folder = Path(new_plugin("momentum", dest=tmp_path)["path"])
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    assert pyproject["build-system"]["requires"] == ["setuptools>=64"]
    project = pyproject["project"]
    assert (project["name"], project["version"]) == ("aegen-momentum", "0.1.0")
    assert project["dependencies"] == ["aegen"]
    assert project["optional-dependencies"] == {"test": ["pytest>=7"]}
    assert project["entry-points"] == {"aegen": {"momentum": "aegen_momentum"}}
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_module_declares_the_api_and_the_hook(kind, tmp_path):
    folder = Path(new_plugin(NAMES[kind], kind, dest=tmp_path)["path"])
    code = (folder / "src" / f"aegen_{NAMES[kind]}" / "__init__.py").read_text()
    assert code.startswith('"""') and 'AEGEN_API = ">=1.0,<2"' in code
    assert f"@hookimpl\ndef register_{REGISTERED[kind]}(register):" in code
    top = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    assert all("torch" not in line for line in top) and "from aegen.api import" in "".join(top)
    readme = (folder / "README.md").read_text()
    for needed in ("aegen install -e .", f"aegen plugins show {NAMES[kind]}", "pytest",
                   "docs/plugins.md"):
        assert needed in readme, needed


def test_every_template_is_used():
    root = resources.files("aegen").joinpath("plugin_template")
    templates = {
        f"{entry.name}/{inner.name}" if entry.is_dir() else entry.name
        for entry in root.iterdir()
        for inner in (entry.iterdir() if entry.is_dir() else [entry])
    }
    assert all(t.endswith(".tmpl") for t in templates), templates
    kinds = {t.split("/")[0] for t in templates if "/" in t}
    assert kinds == set(KINDS)
    rendered = sum(len(render(NAMES[kind], kind)) for kind in KINDS)
    # each kind: pyproject, README, module, tests (+ usage.md inside the README); + model.py
    assert len(templates) == 2 + 3 * len(KINDS) + 1
    assert rendered == 4 * len(KINDS) + 1


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff comes with the test extra")
def test_the_packages_are_ruff_clean_even_with_the_longest_name(tmp_path):
    for kind in KINDS:
        name = NAMES[kind] + "_" + "x" * (MAX_NAME - len(NAMES[kind]) - 1)
        folder = Path(new_plugin(name, kind, dest=tmp_path)["path"])
        result = subprocess.run(["ruff", "check", "."], capture_output=True, text=True,
                                cwd=folder)
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "name, kind, message",
    [
        ("Momentum", "sampler", "`name` must be a lower-case Python identifier"),
        ("my-sampler", "sampler", "`name` must be"),
        ("2fast", "sampler", "`name` must be"),
        ("a" * (MAX_NAME + 1), "sampler", "`name` must be"),
        ("lambda", "sampler", "Python keyword"),
        ("list", "sampler", "built-in name"),
        ("hookimpl", "sampler", "module uses"),
        ("register_samplers", "sampler", "hook"),
        ("linear", "schedule", "built-in schedule"),
        ("schedule", "sampler", "built-in sampler"),
        ("copy", "objective", "built-in training objective"),
        ("momentum", "scheduler", "`kind` must be one of sampler, schedule, architecture"),
    ],
)
def test_names_and_kinds_it_cannot_use(name, kind, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        new_plugin(name, kind, dest=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_built_in_name_of_another_kind_is_fine(tmp_path):
    assert new_plugin("linear", "sampler", dest=tmp_path)["distribution"] == "aegen-linear"


def test_an_existing_folder_needs_force_which_keeps_other_files(tmp_path):
    folder = Path(new_plugin("momentum", dest=tmp_path)["path"])
    module = folder / "src" / "aegen_momentum" / "__init__.py"
    module.write_text("# my edits\n")
    (folder / "NOTES.md").write_text("mine")
    with pytest.raises(UsageError, match="already exists and is not empty; use `force`") as err:
        new_plugin("momentum", dest=tmp_path)
    assert err.value.parameters == ("force",)
    assert module.read_text() == "# my edits\n"
    new_plugin("momentum", dest=tmp_path, force=True)
    assert "AEGEN_API" in module.read_text() and (folder / "NOTES.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aegen-momentum"]  # no temporary


def test_an_empty_folder_is_used_and_a_missing_destination_made(tmp_path):
    (tmp_path / "aegen-momentum").mkdir()
    assert new_plugin("momentum", dest=tmp_path)["path"] == str(tmp_path / "aegen-momentum")
    deeper = tmp_path / "new" / "place"
    assert Path(new_plugin("power", "schedule", dest=deeper)["path"]).parent == deeper


def test_a_failure_while_writing_leaves_no_half_package(tmp_path, monkeypatch):
    written = []
    real = Path.write_text

    def fail_on_the_third(self, text, *args, **kwargs):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(self)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fail_on_the_third)
    with pytest.raises(OSError, match="disk full"):
        new_plugin("momentum", dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_destination_defaults_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert new_plugin("momentum")["path"] == str(tmp_path / "aegen-momentum")


def test_scaffolding_does_not_import_torch(tmp_path):
    code = (
        "import sys\nfrom aegen.scaffold import new_plugin\n"
        f"new_plugin('momentum', dest={str(tmp_path)!r})\nprint('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "AEGEN_LOAD_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_command_line(cli, tmp_path):
    code, out, err = cli("plugins", "new", "power", "--kind", "schedule", "--out", tmp_path,
                         "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["path"] == str(tmp_path / "aegen-power") and report["kind"] == "schedule"
    code, out, err = cli("plugins", "new", "power", "--kind", "schedule", "--out", tmp_path)
    assert code == 2 and "use --force to overwrite" in err and not out
    code, out, err = cli("plugins", "new", "power", "--kind", "schedule", "--out", tmp_path,
                         "--force")
    assert code == 0 and out.strip() == str(tmp_path / "aegen-power")
    code, _, err = cli("plugins", "new", "Power", "--out", tmp_path)
    assert code == 2 and err.startswith("aegen: error: name must be a lower-case")


@pytest.mark.slow
def test_a_sampler_package_for_real_install_list_test_generate_uninstall(
    tiny_checkpoint, tmp_path
):
    made = run_aegen("plugins", "new", "scaffoldcheck", "--out", tmp_path, "--json")
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["path"])
    installed = run_aegen("install", "-e", folder, "--json")
    try:
        assert installed.returncode == 0, installed.stderr
        added = {p["name"]: p for p in json.loads(installed.stdout)["added"]}
        assert added["scaffoldcheck"]["status"] == "ok", added  # src layout, editable
        listed = json.loads(run_aegen("plugins", "--json").stdout)
        plugin = next(p for p in listed["plugins"] if p["name"] == "scaffoldcheck")
        assert plugin["status"] == "ok" and plugin["distribution"] == "aegen-scaffoldcheck"
        assert plugin["registered"]["samplers"] == ["scaffoldcheck"]
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            capture_output=True, text=True, cwd=folder, timeout=900,
        )
        assert tests.returncode == 0, tests.stdout[-4000:]
        out = tmp_path / "grid.png"
        generated = run_aegen("generate", "-c", tiny_checkpoint, "--sampler", "scaffoldcheck",
                              "-O", "keep=0.5", "--steps", "3", "--n", "2", "--seed", "0",
                              "--out", out, "--json")
        assert generated.returncode == 0, generated.stderr
        assert json.loads(generated.stdout)["options"]["keep"] == 0.5 and out.stat().st_size
    finally:
        removed = run_aegen("uninstall", "aegen-scaffoldcheck", "-y", "--json")
    assert removed.returncode == 0, removed.stderr
    assert [p["name"] for p in json.loads(removed.stdout)["removed"]] == ["scaffoldcheck"]
