"""The plugin contract, checked: mistakes are caught at registration and at run time, named
with the plugin and what to change; the rest of a plugin still loads; options are discoverable;
schedules take options; plugins declare the API versions they support."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

import aegen.api as api
from aegen.errors import ConfigError, PluginError
from aegen.plugins import Registry

from .conftest import make_distribution, run_aegen

SIGMOID = """
    import math
    from aegen.api import Option, get_schedule, hookimpl

    AEGEN_API = ">=1.0,<2"

    def sigmoid(n, steps, *, k=10.0):
        c = 1.0 / (1.0 + math.exp(-k * (n / steps - 0.5)))
        return c, 1.0 - c

    @hookimpl
    def register_schedules(register):
        register("sigmoid", sigmoid, description="logistic ramp",
                 options={"k": Option(10.0, "steepness of the ramp", min=0.0)})
"""


def load(strict: bool = False) -> Registry:
    registry = Registry()
    registry.load_entry_points(None, strict)
    return registry


def plugin_named(registry: Registry, name: str):
    return next(p for p in registry.plugins if p.name == name)


# -- registration ---------------------------------------------------------------------------

MISTAKES = """
    from aegen.api import Option, hookimpl

    def good(model, x, *, steps, noise):
        for _ in range(steps):
            yield model(noise.normal(0.5, 0.2))

    def no_steps(model, x, *, noise):
        yield model(x)

    def no_option(model, x, *, steps, noise):
        yield model(x)

    def returns(model, x, *, steps, noise):
        return model(noise.normal(0.5, 0.2))

    @hookimpl
    def register_samplers(register):
        register("good", good)
        register("no-steps", no_steps)
        register("no-option", no_option, options={"scale": Option(0.1)})
        register("returns", returns)
        register("list-default", good, options={"bad": Option([1, 2])})

    @hookimpl
    def register_sampler(register):  # misspelled: no such hook
        register("never", good)

    def register_schedules(register):  # no @hookimpl
        register("never", lambda n, steps: (0.5, 0.5))

    @hookimpl
    def register_objectives(reg):  # pluggy passes `register` by name
        pass
"""


def test_each_mistake_is_a_warning_naming_the_plugin_and_the_rest_still_loads(site, capsys):
    make_distribution(site, "aegen-mistakes", "aegen_mistakes", MISTAKES)
    info = plugin_named(load(), "aegen_mistakes")
    err = capsys.readouterr().err
    assert info.status == "ok"
    assert info.registered["samplers"] == ["good", "returns"]  # the callable ones
    lines = [line for line in err.splitlines() if "aegen_mistakes" in line]
    assert all(line.startswith("aegen: warning: plugin 'aegen_mistakes'") for line in lines)
    said = "\n".join(info.warnings)
    assert "sampler 'no-steps' cannot be called" in said and "`steps`" in said
    assert "sampler 'no-option'" in said and "`scale`" in said
    assert "sampler 'returns' is not a generator function" in said
    assert "sampler 'list-default'" in said and "bool, int, float or str" in said
    assert "`register_sampler`, which is no aegen hook; did you mean `register_samplers`" in said
    assert "`register_schedules` without @hookimpl" in said
    # pluggy's whole message, on one line: the hook, the definition and the argument
    assert "register_objectives(reg)" in said and "{'reg'}" in said
    assert len(lines) == len(info.warnings) == 7


def test_strict_mode_turns_a_contract_mistake_into_an_error(site):
    make_distribution(site, "aegen-mistakes", "aegen_mistakes", MISTAKES)
    with pytest.raises(PluginError, match="aegen_mistakes"):
        load(strict=True)


def test_the_builtins_meet_the_contract_without_a_warning():
    registry = load()
    assert [p.warnings for p in registry.plugins if p.builtin] == [[]] * sum(
        p.builtin for p in registry.plugins
    )


def test_a_plugin_declaring_other_api_versions_is_skipped_with_one_line(site):
    make_distribution(site, "aegen-future", "aegen_future", SIGMOID.replace(">=1.0,<2", ">=2"))
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    result = run_aegen("plugins", "--json", env={"PYTHONPATH": str(site)})
    listed = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert listed["aegen_future"]["status"] == "incompatible"
    assert listed["aegen_sigmoid"]["status"] == "ok"  # declares ">=1.0,<2"
    assert api.API_VERSION == "1.1"  # 1.1 added a sampler's own step count (`steps=`)
    said = [line for line in result.stderr.splitlines() if "aegen_future" in line]
    assert len(said) == 1 and "supports aegen API >=2" in said[0] and "provides API 1.1" in said[0]


def test_unknown_names_in_load_plugins_are_warned_about(site):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    env = {"PYTHONPATH": str(site), "AEGEN_LOAD_PLUGINS": "aegen-sigmoid,nosuch"}
    result = run_aegen("plugins", "--json", env=env)
    assert result.returncode == 0
    assert "AEGEN_LOAD_PLUGINS names 'nosuch'" in result.stderr
    assert "aegen-sigmoid" not in result.stderr.split("names", 1)[1]  # a known name is fine


# -- parameterised schedules ----------------------------------------------------------------


def test_a_schedule_takes_options_bound_by_get_schedule(site):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    steep, default = api.get_schedule("sigmoid(k=40)"), api.get_schedule("sigmoid")
    c_steep, _ = steep(1, 10)
    c_default, _ = default(1, 10)
    assert math.isclose(c_steep, 1 / (1 + math.exp(40 * 0.4)))
    assert math.isclose(c_default, 1 / (1 + math.exp(10 * 0.4)))
    with pytest.raises(ConfigError, match="option 'k' of schedule 'sigmoid' must be at least"):
        api.get_schedule("sigmoid(k=-1)")
    with pytest.raises(ConfigError, match="schedule 'linear' takes no options"):
        api.get_schedule("linear(k=3)")


def test_schedule_options_are_set_from_the_command_line(site, cli, tiny_checkpoint, tmp_path):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    common = ["generate", "-c", tiny_checkpoint, "--n", "2", "--steps", "3", "--seed", "1"]
    made = run_aegen(*common, "--schedule", "sigmoid", "-O", "schedule.k=12",
                     "--out", tmp_path / "a.png", "--json", env={"PYTHONPATH": str(site)})
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["options"]["schedule"] == "sigmoid(k=12.0)"
    status, _, err = cli(*common, "--schedule", "sigmoid(k=12)", "--out", tmp_path / "b.png")
    assert status == 0, err
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    status, _, err = cli(*common, "--schedule", "sigmoid", "-O", "schedule.q=1")
    assert status == 2
    assert err.strip() == (
        "aegen: error: option 'schedule' of sampler 'schedule': schedule 'sigmoid' has no "
        "option 'q' (its options: k)"
    )


# -- discoverable options -------------------------------------------------------------------


def test_plugins_verbose_json_shows_every_option_with_type_default_limits_and_help(site):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    result = run_aegen("plugins", "--verbose", "--json", env={"PYTHONPATH": str(site)})
    components = {(c["kind"], c["name"]): c for c in json.loads(result.stdout)["components"]}
    assert components[("schedule", "sigmoid")]["options"]["k"] == {
        "type": "float", "default": 10.0, "help": "steepness of the ramp",
        "choices": None, "min": 0.0, "max": None, "check": None,
    }
    assert components[("sampler", "schedule")]["options"]["schedule"]["check"] == "get_schedule"
    sigma = components[("sampler", "schedule")]["options"]["sigma"]
    assert sigma["type"] == "float" and sigma["min"] == 0.0 and sigma["help"]
    call = components[("sampler", "walk")]["call"]
    assert call == "sampler(model, x, *, steps, noise, **options)"
    assert components[("architecture", "unet")]["config"]["width"]["type"] == "int"
    assert {kind for kind, _ in components} == {
        "architecture", "sampler", "schedule", "data_source", "objective"
    }


def test_plugins_show_prints_one_component_in_full(site):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    shown = run_aegen("plugins", "show", "sigmoid", env={"PYTHONPATH": str(site)})
    assert shown.returncode == 0, shown.stderr
    assert "schedule sigmoid (plugin aegen_sigmoid)" in shown.stdout
    assert "steepness of the ramp" in shown.stdout and ">= 0.0" in shown.stdout
    missing = run_aegen("plugins", "show", "nosuch")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "aegen: error: no plugin or component is called 'nosuch' (see `aegen plugins`)"
    )


LOADED = """
import sys
from aegen.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("command", ["generate", "walk"])
def test_generate_and_walk_help_name_installed_samplers_and_schedules_without_torch(
    site, command
):
    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    make_distribution(site, "aegen-runtime", "aegen_runtime", RUNTIME)
    result = subprocess.run([sys.executable, "-c", LOADED, command, "--help"],
                            capture_output=True, text=True,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                                 "AEGEN_LOAD_PLUGINS": "aegen_sigmoid,aegen_runtime"})
    text = " ".join(result.stdout.split())
    assert "Installed: crashes, ddim, nan, needs-start, noiseless-walk, returns, schedule," in text
    if command == "generate":
        assert "Installed: cosine, linear, sigmoid." in text
    assert text.endswith("torch imported: False")


def test_reload_plugins_lets_a_running_process_see_a_plugin_put_on_its_path(tmp_path,
                                                                           monkeypatch):
    folder = tmp_path / "later"
    folder.mkdir()
    try:
        with pytest.raises(api.UsageError, match="unknown schedule 'sigmoid'"):
            api.get_schedule("sigmoid")
        make_distribution(folder, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
        monkeypatch.syspath_prepend(str(folder))
        api.reload_plugins()
        assert api.get_component("schedule", "sigmoid").plugin == "aegen_sigmoid"
    finally:
        monkeypatch.undo()
        api.reload_plugins()


def test_a_dotted_option_needs_a_schedule_option_to_address():
    from aegen.sampling import check_sampler

    with pytest.raises(ConfigError) as refused:
        check_sampler("walk", {"schedule.k": "1"})
    assert str(refused.value) == (
        "sampler 'walk' has no option 'schedule.k': schedule.KEY sets an option of the "
        "schedule named by an option 'schedule', which sampler 'walk' lacks (its options: eps)"
    )


def test_dir_of_the_api_lists_the_lazy_names_and_only_public_ones():
    names = dir(api)
    assert {"train", "sample", "generate", "Noise", "get_component", "API_VERSION"} <= set(names)
    assert "get_registry" not in names and "import_module" not in names
    assert api.get_component("sampler", "schedule").plugin == "schedule"


# -- run time -------------------------------------------------------------------------------

RUNTIME = """
    from aegen.api import ConfigError, hookimpl

    def small(model, x, *, steps, noise):
        for _ in range(steps):
            yield noise.normal(0.5, 0.2)[..., :8, :8]

    def silent(model, x, *, steps, noise):
        return
        yield

    def short(model, x, *, steps, noise):
        yield model(noise.normal(0.5, 0.2))

    def returns(model, x, *, steps, noise):
        return model(noise.normal(0.5, 0.2))

    def nan(model, x, *, steps, noise):
        for _ in range(steps):
            yield noise.normal(0.5, 0.2) * float("nan")

    def needs_start(model, x, *, steps, noise):
        if x is None:
            raise ConfigError("sampler 'needs-start' needs starting images (`inputs`)",
                              parameters=["inputs"])
        yield x

    def crashes(model, x, *, steps, noise):
        yield 1 / 0

    @hookimpl
    def register_samplers(register):
        for name, fn in [("small", small), ("silent", silent), ("short", short),
                         ("returns", returns), ("nan", nan), ("needs-start", needs_start),
                         ("crashes", crashes)]:
            register(name, fn)
"""

RUNTIME_CASES = [
    ("small", 1, "yielded a frame of shape (2, 3, 8, 8) at step 1; expected (2, 3, 16, 16)"),
    ("silent", 1, "yielded no frames, but 3 steps were asked for"),
    ("short", 1, "stopped after 1 frame, but 3 steps were asked for"),
    ("returns", 1, "returned a Tensor, not an iterator of frames"),
    ("crashes", 1, "failed at step 1: ZeroDivisionError: division by zero"),
    ("needs-start", 2, "needs starting images (--input)"),
]


@pytest.mark.parametrize("sampler,code,message", RUNTIME_CASES)
def test_a_sampler_breaking_the_frame_contract_is_named_with_its_plugin(
    site, cli, tiny_checkpoint, tmp_path, sampler, code, message
):
    make_distribution(site, "aegen-runtime", "aegen_runtime", RUNTIME)
    out = tmp_path / "grid.png"
    status, _, err = cli("generate", "-c", tiny_checkpoint, "--sampler", sampler, "--n", "2",
                         "--steps", "3", "--out", out)
    assert status == code
    last = err.strip().splitlines()[-1]
    assert message in last
    if code == 1:
        assert f"sampler '{sampler}' (plugin 'aegen_runtime')" in last
    assert not out.exists()


def test_the_real_script_exits_1_for_a_failing_plugin(site, tiny_checkpoint, tmp_path):
    make_distribution(site, "aegen-runtime", "aegen_runtime", RUNTIME)
    result = run_aegen("generate", "-c", tiny_checkpoint, "--sampler", "small", "--n", "2",
                       "--steps", "3", "--out", tmp_path / "grid.png",
                       env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "aegen: error: sampler 'small' (plugin 'aegen_runtime') yielded a frame of shape"
    )


def test_non_finite_final_images_are_a_warning(site, tiny_checkpoint):
    make_distribution(site, "aegen-runtime", "aegen_runtime", RUNTIME)
    from aegen.api import Draw, generate
    from aegen.checkpoint import load_checkpoint
    from aegen.console import Reporter

    warned: list[str] = []
    reporter = Reporter(quiet=True)
    reporter.warn = warned.append
    model = load_checkpoint(tiny_checkpoint).model
    result = generate(model, "nan", draw=Draw(shape=(3, 16, 16), n=2, steps=2), reporter=reporter)
    assert torch.isnan(result.images).all()
    assert warned == [
        "sampler 'nan' (plugin 'aegen_runtime') produced NaN or infinite values in its final "
        "images; they are written as they are (black or white pixels)"
    ]


# -- Option ---------------------------------------------------------------------------------


def test_an_option_check_refuses_with_its_message_prefixed_and_a_broken_check_is_the_plugins():
    from aegen.api import Option

    def at_most_three(value):
        if value > 3:
            raise ValueError("at most 3 cycles fit in a run")
        return "ignored"

    cycles = Option(2, "restart cycles", check=at_most_three)
    assert cycles.parse("3", "option 'cycles' of sampler 'restart'") == 3
    with pytest.raises(ConfigError) as refused:
        cycles.parse("4", "option 'cycles' of sampler 'restart'")
    said = "option 'cycles' of sampler 'restart': at most 3 cycles fit in a run"
    assert str(refused.value) == said
    broken = Option(2, check=lambda value: value.no_such_attribute)
    failed = "the check of option 'cycles' of sampler 'restart' failed: AttributeError"
    with pytest.raises(PluginError, match=failed):
        broken.parse("1", "option 'cycles' of sampler 'restart'")


@pytest.mark.parametrize("option,problem", [
    ((["a"],), "default of type list"),
    ((1.0,), None),
    ((1, "", (1, 2.5)), "has choice 2.5, not a int like its default"),
    ((1.0, "", None, "0"), "has min='0'; limits must be numbers"),
    ((1.0, "", None, None, None, "not callable"), "which is not callable"),
])
def test_an_option_declaration_is_checked(option, problem):
    from aegen.api import Option

    found = Option(*option).problem()
    assert (found is None) if problem is None else (problem in found)


# -- what a review of the contract found ----------------------------------------------------

LAZY = """
    from aegen.api import hookimpl

    def __dir__():
        return ["heavy", "register_schedules"]

    def __getattr__(name):
        if name == "heavy":
            raise ImportError("heavy dependency missing")
        raise AttributeError(name)

    @hookimpl
    def register_schedules(register):
        register("flat", lambda n, steps: (0.5, 0.5))
"""


def test_a_plugin_whose_lazy_attributes_fail_still_loads_its_hooks(site, capsys):
    make_distribution(site, "aegen-lazy", "aegen_lazy", LAZY)
    registry = load()
    assert plugin_named(registry, "aegen_lazy").status == "ok"
    assert "flat" in registry.schedules and "internal error" not in capsys.readouterr().err


VALID = """
    import functools
    from aegen.api import Option, hookimpl

    class Walker:
        def __init__(self, model, x, *, steps, noise, frac=0.5):
            self.model, self.noise, self.left = model, noise, steps

        def __iter__(self):
            return self

        def __next__(self):
            if not self.left:
                raise StopIteration
            self.left -= 1
            return self.model(self.noise.normal(0.5, 0.2))

    def register_sampler(register, name):  # a helper, not a misspelled hook
        register(name, Walker, options={"frac": Option(0.5, choices=(0, 0.5, 1))})

    @hookimpl
    def register_samplers(register):
        register_sampler(register, "walker")
"""


def test_valid_plugins_get_no_warning(site):
    make_distribution(site, "aegen-valid", "aegen_valid", VALID)
    registry = load(strict=True)  # any warning would be an error
    assert registry.sampler("walker").options["frac"].parse("1", "frac") == 1.0


CLEANUP = """
    import sys
    from aegen.api import hookimpl

    def badclose(model, x, *, steps, noise):
        try:
            for _ in range(steps):
                yield model(noise.normal(0.5, 0.2))
        finally:
            raise ValueError("cleanup failed")

    def exits(model, x, *, steps, noise):
        sys.exit(3)
        yield

    def meta(model, x, *, steps, noise):
        import torch
        for _ in range(steps):
            yield torch.empty((len(noise), *noise.shape), device="meta")

    def overflow(n, steps, *, k=1.0):
        import math
        c = 1 / (1 + math.exp(k * n))
        return c, 1 - c

    @hookimpl
    def register_samplers(register):
        for fn in (badclose, exits, meta):
            register(fn.__name__, fn)

    @hookimpl
    def register_schedules(register):
        from aegen.api import Option
        register("overflow", overflow, options={"k": Option(1.0)})
"""

CLEANUP_CASES = [
    (["--sampler", "badclose"], "sampler 'badclose' (plugin 'aegen_cleanup') failed when closed "
     "after its last frame: ValueError: cleanup failed"),
    (["--sampler", "exits"], "sampler 'exits' (plugin 'aegen_cleanup') called sys.exit(3) at "
     "step 1"),
    (["--sampler", "meta"], "sampler 'meta' (plugin 'aegen_cleanup') yielded a frame on meta at "
     "step 1; frames stay on the run's device, cpu"),
    (["--schedule", "overflow(k=100000)"], "schedule 'overflow(k=100000.0)' (plugin "
     "'aegen_cleanup') failed at n=1 of 3: OverflowError: math range error"),
]


@pytest.mark.parametrize("args,message", CLEANUP_CASES)
def test_plugin_faults_at_run_time_are_the_plugins_exit_1(site, cli, tiny_checkpoint, tmp_path,
                                                          args, message):
    make_distribution(site, "aegen-cleanup", "aegen_cleanup", CLEANUP)
    out = tmp_path / "grid.png"
    status, _, err = cli("generate", "-c", tiny_checkpoint, *args, "--n", "2", "--steps", "3",
                         "--out", out)
    assert status == 1
    assert err.strip().splitlines()[-1].startswith(f"aegen: error: {message}")
    assert not out.exists()


def test_the_hand_off_says_which_schedule_options_were_given_over_the_checkpoints(site):
    from types import SimpleNamespace

    from aegen.handoff import sampler_for_run

    make_distribution(site, "aegen-sigmoid", "aegen_sigmoid", SIGMOID)
    said: list[str] = []
    reporter = SimpleNamespace(info=said.append)
    trained = SimpleNamespace(objective={"name": "denoise", "options": {
        "schedule": "sigmoid(k=12.0)", "mu": 0.7, "sigma": 0.2}})
    checked = sampler_for_run("schedule", {"schedule.k": "3"}, trained, reporter)
    assert checked.options["schedule"] == "sigmoid(k=3.0)"
    assert said == ["sampler 'schedule': mu=0.7, schedule=sigmoid(k=12.0), sigma=0.2 from the "
                    "checkpoint's training objective, then schedule.k=3 as given"]


def test_a_data_source_must_return_an_image_set(site, tmp_path):
    make_distribution(site, "aegen-bare", "aegen_bare", """
        from aegen.api import hookimpl

        def load(path, *, size, channels, on_image):
            import torch
            return torch.zeros(2, 1, size, size, dtype=torch.uint8)

        @hookimpl
        def register_data_sources(register):
            register("bare", load)
    """)
    from aegen.data import read_with

    with pytest.raises(PluginError, match="data source 'bare' .* returned a Tensor"):
        read_with(load().data_source("bare"), tmp_path, 8, 1)
