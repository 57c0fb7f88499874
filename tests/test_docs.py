"""The documentation's examples run as written, and what it states about the plugin API is what
the code does."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

import aegen.api as api
from aegen import plugins
from aegen.api import get_schedule, sample
from aegen.checkpoint import load_checkpoint
from aegen.hookspecs import KIND_TABLE

from .conftest import make_distribution, run_aegen

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text()
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def flat(text: str) -> str:
    """`text` with each run of whitespace (a line break included) as one space."""
    return " ".join(text.split())


def worked_example() -> str:
    block = re.search(
        r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", PLUGINS_MD, re.S
    )
    assert block, "docs/plugins.md lost its worked example"
    return block.group(1)


@pytest.fixture
def example_site(tmp_path, monkeypatch) -> Path:
    """The worked example installed as a distribution, and loaded strictly: any contract
    warning about it would be an error."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-example", "aegen_example", worked_example())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "aegen-example")
    monkeypatch.setenv("AEGEN_STRICT_PLUGINS", "1")
    plugins.reset_registry()
    yield site
    plugins.reset_registry()


def test_plugin_guide_worked_example_runs(example_site, tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint).model

    def run(**options):
        frames = sample(model, "renoise", shape=(3, 16, 16), n=2, steps=4, seed=5,
                        options={"strength": "0.2", **options})
        return list(frames)

    first, second = run(), run()
    assert len(first) == 4 and all(f.shape == (2, 3, 16, 16) for f in first)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # the schedule's option, set either way the page says, and bound by get_schedule
    by_text, by_key = run(schedule="power(exponent=3)"), run(**{"schedule.exponent": "3"})
    assert all(torch.equal(a, b) for a, b in zip(by_text, by_key))
    assert not torch.equal(by_text[-1], first[-1])
    assert get_schedule("power(exponent=3)")(1, 2) == (0.125, 0.875)
    assert get_schedule("power")(1, 2) == (0.25, 0.75)


def test_plugin_guide_worked_example_from_the_command_line(example_site, tiny_checkpoint, tmp_path):
    env = {"PYTHONPATH": str(example_site)}  # with AEGEN_STRICT_PLUGINS=1 from the fixture
    listed = run_aegen("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entry = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "aegen_example")
    assert entry["status"] == "ok" and entry["warnings"] == []
    assert entry["registered"]["samplers"] == ["renoise"]
    assert entry["registered"]["schedules"] == ["power"]
    shown = run_aegen("plugins", "show", "power", "--json", env=env)
    (power,) = json.loads(shown.stdout)["components"]
    assert power["call"] == "schedule(n, steps, **options)"
    assert power["options"]["exponent"]["default"] == 2.0
    made = run_aegen("generate", "-c", tiny_checkpoint, "--sampler", "renoise", "--schedule",
                     "power(exponent=3)", "--n", "2", "--steps", "3", "--seed", "0",
                     "--out", tmp_path / "g.png", "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["options"]["schedule"] == "power(exponent=3.0)"


def test_schedule_errors_through_a_schedule_option_carry_its_prefix(example_site, tiny_checkpoint):
    """Reference, "Schedules with options": however the schedule is given, an error about it
    says which sampler's `schedule` option it came through; `get_schedule` alone does not."""
    model = load_checkpoint(tiny_checkpoint).model
    prefix = "option 'schedule' of sampler 'renoise': "
    bound = "option 'exponent' of schedule 'power' must be at least 0.0; got -1.0"
    for options in ({"schedule": "power(exponent=-1)"}, {"schedule.exponent": "-1"},
                    {"schedule": "power", "schedule.exponent": -1}):
        with pytest.raises(api.ConfigError) as refused:
            list(sample(model, "renoise", shape=(3, 16, 16), n=1, steps=1, options=options))
        assert str(refused.value) == prefix + bound, options
    with pytest.raises(api.ConfigError) as direct:
        get_schedule("linear(k=3)")
    assert str(direct.value) == "schedule 'linear' takes no options, got k"
    assert f"`{direct.value}`" in flat(PLUGINS_MD)
    with pytest.raises(api.ConfigError) as lacking:
        list(sample(model, "walk", shape=(3, 16, 16), n=1, steps=1,
                    options={"schedule.k": 1}))
    assert str(lacking.value) == (
        "sampler 'walk' has no option 'schedule.k': schedule.KEY sets an option of the schedule "
        "named by an option 'schedule', which sampler 'walk' lacks (its options: eps)")
    assert str(lacking.value) in flat(PLUGINS_MD)


def test_reload_plugins_finds_a_distribution_put_on_sys_path(tmp_path, monkeypatch):
    """Reference, "Test harness": plugins load once; `reload_plugins()` loads them again."""
    plugins.reset_registry()
    monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "")
    try:
        with pytest.raises(api.UsageError, match="unknown sampler 'renoise'"):
            api.get_component("sampler", "renoise")  # loads the plugins, without the example
        monkeypatch.setenv("AEGEN_LOAD_PLUGINS", "aegen-example")  # read again on reloading
        monkeypatch.setenv("AEGEN_STRICT_PLUGINS", "1")
        site = tmp_path / "site"
        site.mkdir()
        make_distribution(site, "aegen-example", "aegen_example", worked_example())
        monkeypatch.syspath_prepend(str(site))
        with pytest.raises(api.UsageError):
            api.get_component("sampler", "renoise")  # still the registry loaded before
        api.reload_plugins()
        assert api.get_component("sampler", "renoise").plugin == "aegen_example"
    finally:
        plugins.reset_registry()


# -- the Reference matches the code ---------------------------------------------------------


def reference() -> str:
    assert "## Reference" in PLUGINS_MD, "docs/plugins.md lost its Reference section"
    return PLUGINS_MD.split("## Reference", 1)[1]


@pytest.mark.parametrize("kind", KIND_TABLE, ids=lambda kind: kind.plural)
def test_the_reference_states_each_hook_register_signature_and_call(kind):
    text = reference()
    extras = "".join(f", {name}=None" for name in kind.extras)
    row = (f"| `{kind.getter}` | `{kind.hook}(register)` | "
           f'`register(name, {kind.callable}, *, description=""{extras})` | `{kind.call}')
    assert row in text, row


def test_the_reference_lists_every_draw_and_generation_field():
    from aegen.sampling import Draw, Generation

    text = reference()
    for field in dataclasses.fields(Draw):
        default = "(required)" if field.default is dataclasses.MISSING else repr(field.default)
        default = default.replace("'", '"')
        assert f"| `{field.name}` | `{default}` |" in text.replace("| (required) |",
                                                                  "| `(required)` |"), field.name
    for field in dataclasses.fields(Generation):
        assert f"`{field.name}`" in text, field.name


def test_every_public_name_is_documented_and_no_other():
    for name in api.__all__:
        assert re.search(rf"[`.]{name}\b", PLUGINS_MD), f"docs/plugins.md does not document {name}"
    assert sorted(dir(api)) == sorted(api.__all__)
    for page in PAGES:
        assert "get_registry" not in page.read_text(), f"{page.name} names get_registry"


def shown(fn, name: str) -> str:
    """`fn`'s signature as the page writes it: `name(a, b="x", *, c=None, **fields)`."""
    import inspect

    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "reporter"):  # reporter: for aegen's own commands, not documented
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        default = "" if p.default is p.empty else "=" + repr(p.default).replace("'", '"')
        parts.append(p.name + default)
    return f"{name}({', '.join(parts)})"


def test_the_documented_signatures_are_the_real_ones():
    from aegen.noise import Noise

    for fn, name in [(api.sample, "sample"), (api.generate, "generate"), (Noise, "Noise"),
                     (Noise.normal, "noise.normal"), (api.Option, "Option")]:
        assert shown(fn, name) in PLUGINS_MD, shown(fn, name)
    assert f'`aegen.api.API_VERSION` is `"{api.API_VERSION}"`' in PLUGINS_MD


def test_the_reference_states_options_attributes_json_fields_and_conversions():
    from aegen.options import Option

    text = reference()
    option = Option(1.0, "help", min=0.0, check=get_schedule)
    for field in dataclasses.fields(Option):
        assert f"`{field.name}`" in text, field.name
    listed = "`type`, `default`, `help`, `choices`, `min`, `max`, and `check`"
    assert listed in flat(text) and set(option.as_json()) == {
        "type", "default", "help", "choices", "min", "max", "check"}
    assert option.as_json()["check"] == "get_schedule"
    assert "`option.parse(value, what)`" in text
    what = "option 'x' of sampler 's'"
    assert Option(1.0).parse(5, what) == 5.0 and type(Option(1.0).parse(5, what)) is float
    assert Option(1).parse(5.0, what) == 5 and type(Option(1).parse(5.0, what)) is int
    for default, value in [(1.0, True), (1, True), (1, 5.5), (1, "5.0"), (True, 2)]:
        with pytest.raises(api.ConfigError):
            Option(default).parse(value, what)
    assert Option(True).parse(1, what) is True and Option("s").parse(5, what) == "5"
    with pytest.raises(api.ConfigError) as refused:
        Option(1.0).parse(True, "option 'beta' of sampler 'momentum'")
    assert f"`{refused.value}`" in flat(text)


# -- docs/cli.md shows real output ----------------------------------------------------------


def marked_json(name: str):
    text = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(rf"<!-- {name}:start -->\n```json\n(.*?)```\n<!-- {name}:end -->", text, re.S)
    assert block, f"docs/cli.md lost its {name} example"
    return json.loads(block.group(1))


def test_cli_md_plugins_json_is_what_aegen_prints():
    listed = run_aegen("plugins", "--json", env={"AEGEN_LOAD_PLUGINS": ""})
    real = json.loads(listed.stdout)
    shown = marked_json("plugins-json")
    assert shown.keys() == real.keys()
    for key in ("plugins", "components"):
        assert shown[key], key
        assert all(entry in real[key] for entry in shown[key]), key
    shown_show = marked_json("plugins-show")
    command = ["plugins", "show", "schedule", "--kind", "sampler", "--json"]
    assert shown_show == json.loads(run_aegen(*command, env={"AEGEN_LOAD_PLUGINS": ""}).stdout)


@pytest.mark.parametrize("page", ["cli.md", "checkpoints.md"])
def test_info_json_examples_are_what_aegen_prints(page):
    """The `aegen info --json` example of the default model, as printed but for `path` (where
    the package is installed)."""
    text = (ROOT / "docs" / page).read_text()
    block = re.search(r"<!-- info-json:start -->\n```json\n(.*?)```\n<!-- info-json:end -->",
                      text, re.S)
    assert block, f"docs/{page} lost its info-json example"
    shown = json.loads(block.group(1))
    printed = run_aegen("info", "--json")
    assert printed.returncode == 0, printed.stderr
    real = json.loads(printed.stdout)
    assert Path(real.pop("path")).name == Path(shown.pop("path")).name == "default.safetensors"
    assert shown == real


# -- paths only a clone has -----------------------------------------------------------------

# A path into aegen's source repository: a folder that an installed aegen does not have (aegen/
# is also the installed package, but its files are named here as the repository holds them).
REPOSITORY_PATH = re.compile(
    r"(?<![\w/.~$-])(?:\./)?((?:aegen|plugins|examples|tests|benchmarks|\.ci)/[\w./-]*)"
)


def blocks(text: str) -> list[tuple[str, str, str]]:
    """The page as (kind, text, lead) blocks: paragraphs and lists (lines up to a blank line),
    tables and fenced code blocks; `lead` is, for a table or code block, the paragraph before
    it, which introduces it."""
    found: list[tuple[str, list[str]]] = []
    current: list[str] = []
    fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            current.append(line)
            if fence:
                found.append(("code", current))
                current = []
            else:
                if current[:-1]:
                    found.append(("prose", current[:-1]))
                current = [line]
            fence = not fence
        elif fence or line.strip():
            current.append(line)
        elif current:
            found.append(("prose", current))
            current = []
    if current:
        found.append(("prose", current))
    result, lead = [], ""
    for kind, lines in found:
        if kind == "prose" and lines[0].lstrip().startswith("|"):
            kind = "table"
        body = "\n".join(lines)
        result.append((kind, body, lead if kind != "prose" else ""))
        if kind == "prose":
            lead = body
    return result


def test_a_repository_path_is_said_to_be_in_the_repository():
    """A user who installed aegen from the index has none of these files: each paragraph (or
    list, or a table or code block together with the paragraph introducing it) that names one
    says where it is, with the word "repository"."""
    named, unsaid = 0, []
    for page in PAGES:
        for kind, body, lead in blocks(page.read_text()):
            paths = [p for p in REPOSITORY_PATH.findall(body) if (ROOT / p.rstrip(".")).exists()]
            named += len(paths)
            if paths and "repository" not in (body + "\n" + lead).lower():
                unsaid.append(f"{page.name}: {kind} naming {paths[0]}: {body[:60]!r}")
    assert named > 50  # the rule has something to check
    assert not unsaid, "\n".join(unsaid)


def test_the_path_rule_reads_paths_paragraphs_and_lead_ins():
    page = ("Run `examples/quickstart.sh`.\n\nFrom a clone of the repository:\n\n"
            "```\nbash ./examples/batch.sh\n```\n")
    (_, first, _), (_, said, _), (kind, code, lead) = blocks(page)
    assert REPOSITORY_PATH.findall(first) == ["examples/quickstart.sh"]
    assert (kind, REPOSITORY_PATH.findall(code), lead) == ("code", ["examples/batch.sh"], said)
    assert REPOSITORY_PATH.findall("~/.cache/aegen/, $XDG_CACHE_HOME/aegen/, docs/plugins.md") == []


# -- README ---------------------------------------------------------------------------------


def test_readme_states_the_install_and_test_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ('pip install -e ".[test]"', "python -m pytest -q"):
        assert command in readme and command in ci


@pytest.mark.slow
def test_quickstart_example_runs(image_folder, tmp_path):
    import os
    import subprocess

    env = {**os.environ, "EPOCHS": "1", "SIZE": "16", "WIDTH": "4"}
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh"), str(image_folder), str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "qs" / "samples.json").read_text())
    assert len(report["images"]) == 16 and (tmp_path / "qs" / "grid.png").exists()
    assert all(Path(i["path"]).exists() for i in report["images"])
