"""Plugins: built-ins and third parties enter through the entry-point group "aegen"; a broken
plugin is named and skipped; a name claimed twice is an error naming both plugins."""

from __future__ import annotations

import json

import pytest

from aegen.errors import PluginError, UsageError
from aegen.plugins import Registry, allowed_from_env

from .conftest import make_distribution, run_aegen

GOOD = """
    from aegen.api import Option, hookimpl

    def jitter(model, x, *, steps, noise, scale=0.1):
        a = noise.normal(0.5, 0.2) if x is None else x
        for _ in range(steps):
            a = model(a) + noise.normal(0.0, scale)
            yield a

    @hookimpl
    def register_samplers(register):
        register("jitter", jitter, description="test sampler", options={"scale": Option(0.1)})
"""

BROKEN_IMPORT = """
    import this_module_does_not_exist
"""

BROKEN_HOOK = """
    from aegen.api import hookimpl

    @hookimpl
    def register_schedules(register):
        register("half", lambda n, steps: (0.5, 0.5))
        raise RuntimeError("boom in the hook")
"""

DUPLICATE = """
    from aegen.api import hookimpl

    @hookimpl
    def register_schedules(register):
        register("linear", lambda n, steps: (1.0, 0.0), description="impostor")
"""


def load(allowed=None, strict=False) -> Registry:
    registry = Registry()
    registry.load_entry_points(allowed, strict)
    return registry


def test_builtins_come_through_the_entry_point_group():
    registry = load()
    builtins = {p.name: p for p in registry.plugins if p.builtin}
    assert {"unet", "schedule", "schedules"} <= set(builtins)
    assert all(p.distribution == "aegen" and p.status == "ok" for p in builtins.values())
    assert "unet" in registry.architectures
    assert "schedule" in registry.samplers
    assert {"linear", "cosine"} <= set(registry.schedules)
    assert builtins["schedules"].registered["schedules"] == ["cosine", "linear"]
    assert builtins["unet"].hooks == ["register_architectures"]


def test_third_party_plugin_registers_its_sampler(site):
    make_distribution(site, "aegen-jitter", "aegen_jitter", GOOD, version="2.5")
    registry = load()
    assert registry.sampler("jitter").plugin == "aegen_jitter"
    info = next(p for p in registry.plugins if p.name == "aegen_jitter")
    assert (info.distribution, info.version, info.builtin) == ("aegen-jitter", "2.5", False)
    assert info.registered["samplers"] == ["jitter"]


def test_load_plugins_variable_restricts_third_party_plugins(site, monkeypatch):
    make_distribution(site, "aegen-jitter", "aegen_jitter", GOOD)
    monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "")
    registry = load(allowed_from_env())
    assert "jitter" not in registry.samplers
    assert "unet" in registry.architectures  # built-ins always load
    assert next(p for p in registry.plugins if p.name == "aegen_jitter").status == "disabled"
    monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "aegen-jitter")  # by distribution name
    assert "jitter" in load(allowed_from_env()).samplers
    monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "something-else")
    assert "jitter" not in load(allowed_from_env()).samplers


def test_plugin_failing_on_import_is_named_and_skipped(site, capsys):
    make_distribution(site, "aegen-broken", "aegen_broken", BROKEN_IMPORT)
    make_distribution(site, "aegen-jitter", "aegen_jitter", GOOD)
    registry = load()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "aegen_broken" in line]
    assert len(lines) == 1 and "ModuleNotFoundError" in lines[0] and "skipped" in lines[0]
    assert "Traceback" not in err
    assert "jitter" in registry.samplers  # the rest works
    broken = next(p for p in registry.plugins if p.name == "aegen_broken")
    assert broken.status == "failed" and "this_module_does_not_exist" in broken.error


def test_plugin_failing_in_its_hook_registers_nothing(site, capsys):
    make_distribution(site, "aegen-hookfail", "aegen_hookfail", BROKEN_HOOK)
    registry = load()
    assert "boom in the hook" in capsys.readouterr().err
    assert "half" not in registry.schedules  # staged names are rolled back
    assert "linear" in registry.schedules


def test_strict_mode_turns_a_failing_plugin_into_an_error(site):
    make_distribution(site, "aegen-broken", "aegen_broken", BROKEN_IMPORT)
    with pytest.raises(PluginError, match="aegen_broken"):
        load(strict=True)


def test_a_name_registered_twice_is_an_error_naming_both_plugins(site, capsys):
    make_distribution(site, "aegen-dup", "aegen_dup", DUPLICATE)
    registry = load()
    assert "'linear' is registered by both plugin 'schedules' and plugin 'aegen_dup'" in (
        capsys.readouterr().err
    )
    with pytest.raises(PluginError, match="'schedules'.*'aegen_dup'"):
        registry.schedule("linear")
    assert registry.schedule("cosine")  # other names still work


def test_unknown_names_list_what_is_installed():
    with pytest.raises(UsageError, match="unknown sampler 'nope'.*schedule"):
        load().sampler("nope")


def test_register_rejects_bad_registrations(site, capsys):
    make_distribution(
        site,
        "aegen-bad",
        "aegen_bad",
        """
        from aegen.api import hookimpl

        @hookimpl
        def register_samplers(register):
            register("bad", lambda *a, **k: iter(()), options={"x": 1})
    """,
    )
    registry = load()
    assert "must be an aegen.api.Option" in capsys.readouterr().err
    assert "bad" not in registry.samplers


def test_plugins_command_lists_plugins_as_json_in_a_subprocess(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-jitter", "aegen_jitter", GOOD, version="2.5")
    make_distribution(site, "aegen-broken", "aegen_broken", BROKEN_IMPORT)
    result = run_aegen("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["aegen_jitter"]["version"] == "2.5"
    assert plugins["aegen_jitter"]["hooks"] == ["register_samplers"]
    assert plugins["aegen_jitter"]["registered"]["samplers"] == ["jitter"]
    assert plugins["aegen_broken"]["status"] == "failed"
    assert "unet" in plugins["unet"]["registered"]["architectures"]
    kinds = {(c["kind"], c["name"]) for c in data["components"]}
    assert {("architecture", "unet"), ("sampler", "jitter"), ("schedule", "cosine")} <= kinds
    assert "Traceback" not in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if "aegen_broken" in ln]) == 1
    table = run_aegen("plugins", env={"PYTHONPATH": str(site)})
    assert table.returncode == 0
    assert "aegen_jitter" in table.stdout and "jitter" in table.stdout
    assert "\x1b[" not in table.stdout  # no escapes when not a terminal
    only_builtins = run_aegen(
        "plugins", "--json", env={"PYTHONPATH": str(site), "AEGEN_LOAD_PLUGINS": ""}
    )
    statuses = {p["name"]: p["status"] for p in json.loads(only_builtins.stdout)["plugins"]}
    assert statuses["aegen_jitter"] == "disabled" and statuses["aegen_broken"] == "disabled"


def test_a_third_party_sampler_runs_through_generate(
    site, tiny_checkpoint, tmp_path, cli, monkeypatch
):
    from aegen import plugins

    make_distribution(site, "aegen-jitter", "aegen_jitter", GOOD)
    plugins.reset_registry()
    try:
        out = tmp_path / "jitter.png"
        code, stdout, err = cli(
            "generate",
            "-c",
            tiny_checkpoint,
            "--sampler",
            "jitter",
            "-O",
            "scale=0.05",
            "--steps",
            "3",
            "--n",
            "2",
            "--seed",
            "1",
            "--out",
            out,
            "-q",
        )
        assert code == 0, err
        assert stdout.strip() == str(out) and out.exists()
    finally:
        plugins.reset_registry()
