"""`aegen install` and `aegen uninstall`, run as a user runs them.

install reports each new plugin as the next `aegen` loads it (an editable install becomes
importable only in a new interpreter). uninstall removes only an aegen plugin's distribution
(anything with --force), asks first on a terminal and refuses to guess without one, exits 1
with one line for what is not installed, and reports what went as "removed".

The slow tests pip-install into the environment the tests run in, as a user would, and always
remove what they installed; the hostile plugin goes into a virtual environment of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import aegen_script, make_wheel, run_aegen
from .test_scripting import in_venv, venv  # noqa: F401  (venv: a fixture)

SCHEDULE = """
    from aegen.api import hookimpl

    def flat(n, steps):
        return 0.5, 0.5

    @hookimpl
    def register_schedules(register):
        register({name!r}, flat, description="the same weight at every step")
"""


def plugins_listed() -> dict[str, dict]:
    """The plugins as `aegen plugins --json` lists them, by name."""
    listed = run_aegen("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    return {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}


def is_installed(dist: str) -> bool:
    """Whether a new interpreter finds the distribution `dist`."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, importlib.metadata as m; m.distribution(sys.argv[1])",
            dist,
        ],
        capture_output=True,
    )
    return found.returncode == 0


def pip_uninstall(dist: str) -> None:
    """Clean-up that does not depend on the code under test."""
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "-y", "-q", dist], capture_output=True
    )


def aegen_errors(stderr: str) -> list[str]:
    """aegen's own lines on stderr (pip's, such as its warning to root, left out)."""
    return [line for line in stderr.splitlines() if line.startswith("aegen: ")]


def uninstall_answering(answer: str, dist: str, *args: str) -> subprocess.CompletedProcess:
    """`aegen uninstall DIST ARGS` with a terminal as stdin, on which `answer` is typed."""
    import pty

    main, terminal = pty.openpty()
    try:
        os.write(main, answer.encode())
        return subprocess.run(
            [aegen_script(), "uninstall", dist, *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        os.close(terminal)
        os.close(main)


def src_layout_package(folder: Path, dist: str, module: str, schedule: str) -> Path:
    """A plugin package in the src layout, built by setuptools (whose editable install works
    through a .pth file and an import finder)."""
    (folder / "src" / module).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "1.0"

        [project.entry-points.aegen]
        {module} = "{module}"

        [tool.setuptools.packages.find]
        where = ["src"]
        """)
    )
    code = textwrap.dedent(SCHEDULE.format(name=schedule))
    (folder / "src" / module / "__init__.py").write_text(code)
    return folder


def test_uninstalling_what_is_not_installed_exits_1_with_one_line():
    result = run_aegen("uninstall", "aegen-no-such-plugin", "-y", "--json")
    assert (result.returncode, result.stdout) == (1, "")
    assert (
        result.stderr
        == "aegen: error: cannot uninstall aegen-no-such-plugin: it is not installed\n"
    )


def test_aegen_itself_is_not_uninstalled_without_force():
    for args in (["-y"], ["-y", "--json"], []):  # refused before anything is asked
        result = run_aegen("uninstall", "aegen", *args)
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr.startswith("aegen: error: cannot uninstall aegen: it is aegen itself")
        assert len(result.stderr.splitlines()) == 1 and "--force" in result.stderr
    assert is_installed("aegen") and plugins_listed()["unet"]["builtin"]


@pytest.mark.slow
def test_an_editable_src_layout_plugin_is_reported_as_the_next_aegen_loads_it(tmp_path):
    dist, module = "aegen-test-srclayout", "aegen_test_srclayout"
    package = src_layout_package(tmp_path / "pkg", dist, module, "test-srclayout-flat")
    try:
        installed = run_aegen("install", "-e", package, "--json", "-q")
        assert installed.returncode == 0, installed.stderr
        report = json.loads(installed.stdout)
        assert [p["name"] for p in report["added"]] == [module] and report["updated"] == []
        added = report["added"][0]
        assert (added["status"], added["error"]) == ("ok", None)
        assert added["registered"]["schedules"] == ["test-srclayout-flat"]
        assert aegen_errors(installed.stderr) == []
        assert plugins_listed()[module] == added  # what the next aegen says
        removed = run_aegen("uninstall", dist, "-y", "--json", "-q")
        assert removed.returncode == 0, removed.stderr
        report = json.loads(removed.stdout)
        assert report["uninstalled"] == dist
        assert [(p["name"], p["status"]) for p in report["removed"]] == [(module, "removed")]
        assert module not in plugins_listed() and not is_installed(dist)
    finally:
        pip_uninstall(dist)


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="needs a pseudo-terminal")
def test_uninstall_asks_on_a_terminal_and_refuses_to_guess_without_one(tmp_path):
    dist, module = "aegen-test-ask", "aegen_test_ask"
    wheel = make_wheel(tmp_path, dist, module, SCHEDULE.format(name="test-ask-flat"))
    try:
        assert run_aegen("install", wheel, "-q").returncode == 0
        piped = subprocess.run(
            [aegen_script(), "uninstall", dist],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert (piped.returncode, piped.stdout) == (2, "")
        [line] = piped.stderr.splitlines()  # the flag as cli.py's FLAGS names it
        assert line.startswith(
            f"aegen: error: aegen uninstall asks before removing {dist} 1.0 and its plugin "
            f"{module}, and stdin is not a terminal; pass "
        ) and line.endswith("--yes to remove it without asking")
        declined = uninstall_answering("n\n", dist)
        question = f"Remove {dist} 1.0 and its plugin {module}? [y/N] "  # the answer echoes
        assert (declined.returncode, declined.stdout) == (1, "")  # on the terminal, not here
        assert declined.stderr == f"{question}aegen: error: {dist} not uninstalled: not confirmed\n"
        assert is_installed(dist) and module in plugins_listed()
        agreed = uninstall_answering("y\n", dist, "--json")
        assert agreed.returncode == 0, agreed.stderr
        assert agreed.stderr.startswith(question) and "Traceback" not in agreed.stderr
        removed = json.loads(agreed.stdout)["removed"]
        assert [(p["name"], p["status"]) for p in removed] == [(module, "removed")]
        assert not is_installed(dist)
    finally:
        pip_uninstall(dist)


@pytest.mark.slow
def test_a_distribution_that_is_no_aegen_plugin_is_removed_only_with_force(tmp_path):
    dist = "aegen-test-plain"
    wheel = make_wheel(tmp_path, dist, "aegen_test_plain", "VALUE = 1\n", plugin=False)
    try:
        installed = run_aegen("install", wheel, "--json", "-q")
        assert installed.returncode == 0, installed.stderr
        assert json.loads(installed.stdout)["added"] == []
        refused = run_aegen("uninstall", dist, "-y", "--json")
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == (
            f"aegen: error: cannot uninstall {dist}: it registers no aegen plugin (no entry "
            "point in group 'aegen'), so aegen leaves it to pip; pass --force to remove it "
            "anyway\n"
        )
        assert is_installed(dist)
        forced = run_aegen("uninstall", dist, "-y", "--force", "--json", "-q")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout) == {"uninstalled": dist, "removed": []}
        assert not is_installed(dist)
    finally:
        pip_uninstall(dist)


@pytest.mark.slow
def test_install_reports_broken_plugins_and_warns_only_about_its_own(venv, tmp_path):  # noqa: F811
    """A plugin failing on import is listed as failed; one that ends the interpreter cannot be
    listed, which install says (exit 0: pip did install it). Warnings about plugins installed
    before are not this install's."""
    wheels = tmp_path / "wheels"
    broken = make_wheel(wheels, "aegen-broken", "aegen_broken", "import no_such_module\n")
    good = make_wheel(wheels, "aegen-good", "aegen_good", SCHEDULE.format(name="good-flat"))
    killer = make_wheel(wheels, "aegen-killer", "aegen_killer", "import os\nos._exit(3)\n")

    first = in_venv(venv, "install", broken, "--json", "-q")
    assert first.returncode == 0, first.stderr
    [added] = json.loads(first.stdout)["added"]
    assert (added["name"], added["status"]) == ("aegen_broken", "failed")
    assert "No module named 'no_such_module'" in added["error"]
    assert aegen_errors(first.stderr) == [
        "aegen: warning: plugin 'aegen_broken' (aegen-broken) failed to import: "
        "ModuleNotFoundError: No module named 'no_such_module'; skipped"
    ]
    second = in_venv(venv, "install", good, "--json", "-q")
    assert second.returncode == 0, second.stderr
    [added] = json.loads(second.stdout)["added"]
    assert (added["name"], added["status"]) == ("aegen_good", "ok")
    assert aegen_errors(second.stderr) == []  # nothing about aegen_broken
    third = in_venv(venv, "install", killer, "--json", "-q")
    assert third.returncode == 0, third.stderr
    [added] = json.loads(third.stdout)["added"]
    assert (added["name"], added["status"]) == ("aegen_killer", "failed")
    assert added["error"].startswith("not checked: listing the plugins failed")
    [warning] = aegen_errors(third.stderr)
    assert warning.startswith("aegen: warning: listing the plugins after pip failed")
