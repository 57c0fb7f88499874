"""A third-party plugin written from docs/plugins.md (its "Reference") and docs/cli.md alone,
installed as a real distribution, and what those pages promise about it, checked.

The plugin, `aegen_momentum` (distribution `aegen-momentum`), registers a sampler with options
limited by `choices`, by `min`/`max` and by a `check`, a schedule with an option, and an objective
with an option. Two more distributions hold the mistakes the Reference describes: `aegen_broken`
(a sampler that breaks the frame contract, a hook whose argument is misnamed) and `aegen_future`
(an `AEGEN_API` that excludes this aegen).

When this was written the docs gave no way to load a fresh registry in a running process
(`aegen.api.reload_plugins` came after, from this file's findings), so nothing here loads these
plugins into the pytest process. The `aegen` commands run through tests/conftest.py's `run_aegen`
with the plugins' folders on PYTHONPATH, and only them named in AEGEN_LOAD_PLUGINS, so that
whatever else is installed in this Python stays out. The checks of the Python API (marked
`@api_check(...)`) run in one fresh interpreter per set of plugins, which executes this file and
calls them in turn. The slow runs start together at the first test, on a few threads, to share the
cores.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import make_distribution, run_aegen

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# The plugins, as their authors would write them from docs/plugins.md.

MOMENTUM = '''
"""aegen_momentum: a heavy-ball sampler, a sigmoid schedule and a masking objective."""

import math

from aegen.api import Option, get_schedule, hookimpl

AEGEN_API = ">=1.0,<2"


def _even(value):
    if value % 2:
        raise ValueError(f"must be even, got {value}")


def momentum(model, x, *, steps, noise, schedule="sigmoid", beta=0.5, start="noise", warmup=0):
    """Iterated denoising whose input moves towards c * g + d * noise with momentum `beta`."""
    weights = get_schedule(schedule)
    if x is not None:
        a = x
    elif start == "noise":
        a = noise.normal(0.7, 0.2)
    else:
        a = noise.normal(0.5, 0.0)
    velocity = a * 0.0
    for n in range(steps):
        g = model(a)
        yield g  # (B, C, H, W), once per step
        c, d = weights(n, steps)
        target = c * g + d * noise.normal(0.7, 0.2)
        velocity = (beta if n >= warmup else 0.0) * velocity + (target - a)
        a = a + velocity


def sigmoid(n, steps, *, k=10.0):
    c = 1.0 / (1.0 + math.exp(-k * (n / steps - 0.5)))
    return c, 1.0 - c


def mask(clean, *, generator, fraction=0.25):
    import torch

    keep = torch.rand(clean.shape, generator=generator, device=clean.device) >= fraction
    return clean * keep


@hookimpl
def register_samplers(register):
    register(
        "momentum",
        momentum,
        description="iterated denoising with heavy-ball momentum",
        options={
            "schedule": Option("sigmoid", "schedule mixing output and noise", check=get_schedule),
            "beta": Option(0.5, "momentum of the update", min=0.0, max=0.95),
            "start": Option("noise", "the first input", choices=("noise", "grey")),
            "warmup": Option(0, "steps without momentum (even)", min=0, check=_even),
        },
    )


@hookimpl
def register_schedules(register):
    register("sigmoid", sigmoid, description="logistic ramp",
             options={"k": Option(10.0, "steepness of the ramp", min=0.0)})


@hookimpl
def register_objectives(register):
    register("mask", mask, description="zero a random share of the pixels",
             options={"fraction": Option(0.25, "share of pixels set to 0", min=0.0, max=0.9)})
'''

BROKEN = '''
"""aegen_broken: two mistakes against the contract."""

from aegen.api import hookimpl


def bad_shape(model, x, *, steps, noise):
    for _ in range(steps):
        yield noise.normal(0.5, 0.1)[:, :, ::2, ::2]  # half the model's size


@hookimpl
def register_samplers(register):
    register("bad-shape", bad_shape, description="yields frames of half the size")


@hookimpl
def register_objectives(reg):  # pluggy passes `register` by name
    reg("never", lambda clean, *, generator: clean)
'''

FUTURE = '''
"""aegen_future: written for an API this aegen does not provide."""

from aegen.api import hookimpl

AEGEN_API = ">=2"


def later(model, x, *, steps, noise):
    yield from ()


@hookimpl
def register_samplers(register):
    register("from-the-future", later)
'''

# What `aegen plugins --verbose --json` and `show` must say of each component (docs/plugins.md,
# Reference, "aegen plugins": per option `type`, `default`, `help`, `choices`, `min`, `max`).
DECLARED = {
    ("sampler", "momentum"): {
        "call": "sampler(model, x, *, steps, noise, **options)",
        "description": "iterated denoising with heavy-ball momentum",
        "options": {
            "schedule": {
                "type": "str",
                "default": "sigmoid",
                "help": "schedule mixing output and noise",
                "choices": None,
                "min": None,
                "max": None,
            },
            "beta": {
                "type": "float",
                "default": 0.5,
                "help": "momentum of the update",
                "choices": None,
                "min": 0.0,
                "max": 0.95,
            },
            "start": {
                "type": "str",
                "default": "noise",
                "help": "the first input",
                "choices": ["noise", "grey"],
                "min": None,
                "max": None,
            },
            "warmup": {
                "type": "int",
                "default": 0,
                "help": "steps without momentum (even)",
                "choices": None,
                "min": 0,
                "max": None,
            },
        },
    },
    ("schedule", "sigmoid"): {
        "call": "schedule(n, steps, **options)",
        "description": "logistic ramp",
        "options": {
            "k": {
                "type": "float",
                "default": 10.0,
                "help": "steepness of the ramp",
                "choices": None,
                "min": 0.0,
                "max": None,
            }
        },
    },
    ("objective", "mask"): {
        "call": "make_input(clean, *, generator, **options)",
        "description": "zero a random share of the pixels",
        "options": {
            "fraction": {
                "type": "float",
                "default": 0.25,
                "help": "share of pixels set to 0",
                "choices": None,
                "min": 0.0,
                "max": 0.9,
            }
        },
    },
}
OPTION_FIELDS = ("type", "default", "help", "choices", "min", "max")

# --------------------------------------------------------------------------------------------
# Installing the plugins, and running aegen and the API checks with them.


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """One folder per distribution, each laid out as an installed distribution."""
    folders = {}
    for key, dist, module, code in [
        ("momentum", "aegen-momentum", "aegen_momentum", MOMENTUM),
        ("broken", "aegen-broken", "aegen_broken", BROKEN),
        ("future", "aegen-future", "aegen_future", FUTURE),
    ]:
        folders[key] = tmp_path_factory.mktemp(f"site-{key}")
        make_distribution(folders[key], dist, module, code, version="0.3")
    return folders


def plugin_env(sites: dict[str, Path], *keys: str, strict: bool = False) -> dict[str, str]:
    """The environment of an aegen that loads the named plugins (and the built-ins) only:
    `AEGEN_LOAD_PLUGINS` keeps out any other third-party plugin installed in this Python."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AEGEN_STRICT_PLUGINS", "AEGEN_LOAD_PLUGINS", "PYTHONPATH")
    }
    env["PYTHONPATH"] = os.pathsep.join(str(sites[k]) for k in keys)
    env["AEGEN_LOAD_PLUGINS"] = ",".join(f"aegen_{k}" for k in keys)
    if strict:
        env["AEGEN_STRICT_PLUGINS"] = "1"
    return env


def aegen(sites, *args, plugins=("momentum",), strict=False):
    """Run the `aegen` script with the given plugin folders on PYTHONPATH (a clean environment)."""
    return run_aegen(*args, env=plugin_env(sites, *plugins, strict=strict))


# Each group of API checks runs in one fresh interpreter: (plugin folders, strict). The commands
# (`slow_commands`) run aegen_momentum with AEGEN_STRICT_PLUGINS=1; here it shares a registry
# with aegen_broken, whose contract warning would otherwise stop the whole group.
API_GROUPS = {
    "momentum": (("momentum", "broken"), False),
    "strict-broken": (("broken",), True),
}
API_CHECKS: dict[str, dict] = {group: {} for group in API_GROUPS}


def api_check(group: str = "momentum"):
    """Mark a check to run in the fresh interpreter of `group`; pytest sees its outcome."""

    def mark(check):
        API_CHECKS[group][check.__name__] = check

        def test(api_results):
            outcome = api_results(group)[check.__name__]
            assert outcome == "ok", outcome

        test.__doc__ = check.__doc__
        return test

    return mark


RUN_CHECKS = """
import json, runpy, sys, traceback
checks = runpy.run_path(sys.argv[1], run_name="plugin_checks")["API_CHECKS"][sys.argv[2]]
results = {}
for name, check in checks.items():
    try:
        check()
        results[name] = "ok"
    except BaseException:
        results[name] = traceback.format_exc()
with open(sys.argv[3], "w") as f:
    json.dump(results, f)
"""


def run_api_checks(sites, group: str, out: Path) -> dict[str, str]:
    """Run the checks of `group` in a fresh interpreter; each one's outcome: "ok" or a traceback."""
    keys, strict = API_GROUPS[group]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CHECKS, __file__, group, str(out)],
        env=plugin_env(sites, *keys, strict=strict),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), proc.stderr
    return json.loads(out.read_text())


def slow_commands(checkpoint: Path, images: Path, out: Path) -> dict[str, tuple]:
    """The `aegen` runs that load torch, by name: (arguments, plugin folders, strict). The tests
    below say what each must do."""
    ckpt, images, out = (shlex.quote(str(p)) for p in (checkpoint, images, out))
    fast = "--precision fp32 --contiguous --device cpu"  # nothing measured
    sample = f"generate -c {ckpt} -n 2 --steps 3 --seed 0 {fast}"
    momentum = f"{sample} --sampler momentum -O beta=0.25 --json"
    commands = {
        "by-option": (
            f"{momentum} --schedule sigmoid -O schedule.k=12 --out {out}/by-option.png",
            ("momentum",),
        ),
        "by-text": (
            f'{momentum} --schedule "sigmoid(k=12)" --out {out}/by-text.png',
            ("momentum",),
        ),
        "bad-option": (
            f"{sample} --sampler momentum -O beta=2 --out {out}/bad-option.png",
            ("momentum",),
        ),
        "bad-shape": (f"{sample} --sampler bad-shape --out {out}/bad-shape.png", ("broken",)),
        "train": (
            f"train {images} --out {out}/masked.safetensors --objective mask -O fraction=0.5 "
            f"--size 16 --set width=4 --set depth=2 --epochs 1 --batch-size 8 --seed 0 {fast} "
            "--json",
            ("momentum",),
        ),
    }
    # AEGEN_STRICT_PLUGINS=1 wherever only aegen_momentum is loaded, as docs/plugins.md advises
    return {
        name: (shlex.split(line), plugins, plugins == ("momentum",))
        for name, (line, plugins) in commands.items()
    }


@pytest.fixture(scope="module")
def started(request, sites, image_folder, tmp_path_factory):
    """Every slow run (the API check groups, `slow_commands`), started together on a few threads
    the first time a test needs one, so that they share the cores: name -> Future."""
    out = tmp_path_factory.mktemp("runs")
    pool = ThreadPoolExecutor(max_workers=3)
    jobs = {
        f"api-{group}": pool.submit(run_api_checks, sites, group, out / f"{group}.json")
        for group in API_GROUPS
    }
    checkpoint = request.getfixturevalue("tiny_checkpoint")  # trained here, meanwhile
    for name, (args, plugins, strict) in slow_commands(checkpoint, image_folder, out).items():
        jobs[name] = pool.submit(aegen, sites, *args, plugins=plugins, strict=strict)
    jobs["out"] = out
    yield jobs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def api_results(started):
    return lambda group: started[f"api-{group}"].result()


def tiny_model():
    """An autoencoder that costs nothing: per-pixel affine encode, sigmoid decode. No batch norm,
    so each image depends on its own seed alone."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(1.5))
            self.b = torch.nn.Parameter(torch.tensor(-0.5))

        def encode(self, x):
            return x * self.w + self.b

        def decode(self, h):
            return torch.sigmoid(h)

        def forward(self, x):
            return self.decode(self.encode(x))

    return Tiny()


def config_error(options, sampler="momentum") -> str:
    """The message of the ConfigError that sampling with `options` raises."""
    from aegen.api import ConfigError, sample

    with pytest.raises(ConfigError) as caught:
        list(sample(tiny_model(), sampler, options=options, shape=(1, 4, 4), n=1, steps=1))
    return str(caught.value)


def checkpoint_metadata(path: Path) -> dict:
    """The `aegen` metadata of a checkpoint, read as docs/checkpoints.md describes the file."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    return json.loads(header["__metadata__"]["aegen"])


# --------------------------------------------------------------------------------------------
# `aegen plugins`


@pytest.fixture(scope="module")
def listing(sites, started):
    """`aegen plugins --verbose --json` with all three plugins installed (the slow runs start
    first, to share the cores)."""
    proc = aegen(sites, "plugins", "--verbose", "--json", plugins=("momentum", "broken", "future"))
    assert proc.returncode == 0, proc.stderr  # loading problems never change the exit status
    data = json.loads(proc.stdout)
    return data, {p["name"]: p for p in data["plugins"]}, proc.stderr


def test_plugins_json_lists_the_plugin_ok_without_warnings(listing):
    """(`--verbose` only adds fields to the components.)"""
    _, plugins, _ = listing
    plugin = plugins["aegen_momentum"]
    assert plugin["distribution"] == "aegen-momentum"
    assert plugin["version"] == "0.3"
    assert plugin["builtin"] is False
    assert plugin["status"] == "ok"
    assert plugin["error"] is None
    assert plugin["warnings"] == []
    assert sorted(plugin["hooks"]) == [
        "register_objectives",
        "register_samplers",
        "register_schedules",
    ]
    assert plugin["registered"] == {
        "architectures": [],
        "samplers": ["momentum"],
        "schedules": ["sigmoid"],
        "data_sources": [],
        "objectives": ["mask"],
    }


def test_verbose_json_shows_each_component_with_its_call_and_options_as_declared(listing):
    data, _, _ = listing
    mine = {
        (c["kind"], c["name"]): c for c in data["components"] if c["plugin"] == "aegen_momentum"
    }
    assert set(mine) == set(DECLARED)
    for key, declared in DECLARED.items():
        shown = mine[key]
        assert shown["description"] == declared["description"]
        assert shown["call"] == declared["call"], key
        options = {name: {f: o[f] for f in OPTION_FIELDS} for name, o in shown["options"].items()}
        assert options == declared["options"], key


def test_plugins_show_gives_the_sampler_in_full(sites):
    proc = aegen(sites, "plugins", "show", "momentum", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["plugins"] == []  # no plugin is called `momentum`
    [component] = shown["components"]
    assert (component["kind"], component["name"], component["plugin"]) == (
        "sampler",
        "momentum",
        "aegen_momentum",
    )
    declared = DECLARED[("sampler", "momentum")]
    assert component["call"] == declared["call"]
    assert {n: {f: o[f] for f in OPTION_FIELDS} for n, o in component["options"].items()} == (
        declared["options"]
    )


def test_a_hook_whose_argument_is_not_register_is_a_warning_and_the_rest_loads(listing):
    _, plugins, stderr = listing
    broken = plugins["aegen_broken"]
    assert broken["status"] == "ok"
    assert broken["registered"]["samplers"] == ["bad-shape"]  # the rest of the plugin loaded
    assert broken["registered"]["objectives"] == []  # the refused hook is left out
    [warning] = broken["warnings"]
    assert (
        "hook `register_objectives` is refused by pluggy, which passes its argument by name "
        "(`register`)" in warning
    )
    assert "register_objectives(reg)" in warning
    assert (
        "Argument(s) {'reg'} are declared in the hookimpl but can not be found in the "
        "hookspec" in warning
    )
    assert (
        "aegen: warning: plugin 'aegen_broken' (aegen-broken) hook `register_objectives` is "
        "refused by pluggy" in stderr
    )


def test_the_misnamed_hook_warning_is_word_for_word_the_documented_one(listing):
    _, plugins, _ = listing
    [warning] = plugins["aegen_broken"]["warnings"]
    assert warning.endswith(
        "hook `register_objectives` is refused by pluggy, which passes its argument by name "
        "(`register`): Plugin 'aegen_broken' for hook 'register_objectives' hookimpl "
        "definition: register_objectives(reg) Argument(s) {'reg'} are declared in the hookimpl "
        "but can not be found in the hookspec"
    )


def test_aegen_api_excluding_this_version_makes_the_plugin_incompatible(listing):
    data, plugins, stderr = listing
    future = plugins["aegen_future"]
    assert future["status"] == "incompatible"
    assert "supports aegen API >=2, but this aegen provides API 1.1" in future["error"]
    assert future["registered"] == {}
    assert "from-the-future" not in {c["name"] for c in data["components"]}
    assert (
        "aegen: warning: plugin 'aegen_future' (aegen-future) supports aegen API >=2, but "
        "this aegen provides API 1.1 (install a release of the plugin made for it); skipped"
    ) in stderr.splitlines()


def test_generate_help_names_the_installed_sampler_and_schedule(sites):
    proc = aegen(sites, "generate", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split()).replace("- ", "-")  # undo the help's line wrapping
    assert "Installed: ddim, momentum, noiseless-walk, schedule, walk." in text  # --sampler
    assert "Installed: cosine, linear, sigmoid." in text  # --schedule


# --------------------------------------------------------------------------------------------
# The Python API: what a plugin's own tests drive (docs/plugins.md, "Test harness").


@api_check()
def test_get_component_returns_what_the_plugin_registered():
    """`get_component(kind, name)` has name, fn, description, plugin and options."""
    import aegen_momentum

    from aegen.api import Option, UsageError, get_component

    sampler = get_component("sampler", "momentum")
    assert sampler.name == "momentum"
    assert sampler.fn is aegen_momentum.momentum
    assert sampler.description == "iterated denoising with heavy-ball momentum"
    assert sampler.plugin == "aegen_momentum"
    assert sorted(sampler.options) == ["beta", "schedule", "start", "warmup"]
    assert all(isinstance(o, Option) for o in sampler.options.values())
    assert get_component("schedules", "sigmoid").fn is aegen_momentum.sigmoid  # plural kind
    assert get_component("objective", "mask").options["fraction"].__class__ is Option
    with pytest.raises(UsageError):
        get_component("sampler", "no-such-sampler")


@api_check()
def test_sample_yields_exactly_steps_frames_of_shape_n_c_h_w():
    import torch

    from aegen.api import sample

    frames = list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=3, steps=5, seed=7))
    assert len(frames) == 5
    for frame in frames:
        assert isinstance(frame, torch.Tensor) and frame.dtype.is_floating_point
        assert tuple(frame.shape) == (3, 1, 8, 8)
    batched = list(
        sample(tiny_model(), "momentum", shape=(1, 8, 8), n=3, steps=5, seed=7, batch_size=2)
    )  # two sampler calls in lockstep: still whole frames
    assert [tuple(f.shape) for f in batched] == [(3, 1, 8, 8)] * 5
    assert all(torch.equal(a, b) for a, b in zip(frames, batched))


@api_check()
def test_the_same_seed_gives_identical_frames_and_another_seed_others():
    import torch

    from aegen.api import sample

    def run(seed):
        return list(
            sample(
                tiny_model(),
                "momentum",
                options={"beta": 0.3, "warmup": 2},
                shape=(1, 8, 8),
                n=2,
                steps=4,
                seed=seed,
            )
        )

    first, again, other = run(11), run(11), run(12)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[-1], other[-1])


@api_check()
def test_image_i_is_the_image_of_seed_plus_i_drawn_alone():
    import torch

    from aegen.api import sample

    together = list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=3, steps=4, seed=20))
    for i in range(3):
        alone = list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=1, steps=4, seed=20 + i))
        assert all(torch.equal(t[i], a[0]) for t, a in zip(together, alone)), i


@api_check()
def test_a_draw_and_its_fields_as_keywords_are_the_same_run():
    import torch

    from aegen.api import Draw, sample

    draw = Draw(shape=(1, 8, 8), n=2, steps=3, seed=4)
    assert (draw.n, draw.steps, draw.seed, draw.batch_size, draw.start) == (2, 3, 4, None, None)
    assert Draw(shape=(1, 8, 8)).n == 16 and Draw(shape=(1, 8, 8)).steps is None
    # None: the sampler's own step count; `momentum` registers none, so aegen's 100
    assert len(list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=1))) == 100
    by_draw = list(sample(tiny_model(), "momentum", draw=draw))
    by_keywords = list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=2, steps=3, seed=4))
    replaced = list(sample(tiny_model(), "momentum", draw=draw, steps=2))  # keywords replace
    assert all(torch.equal(a, b) for a, b in zip(by_draw, by_keywords))
    assert len(replaced) == 2
    with pytest.raises(TypeError):
        list(sample(tiny_model(), "momentum", draw=draw, no_such_field=1))


@api_check()
def test_starting_images_reach_the_sampler_as_x():
    import torch

    from aegen.api import sample

    start = torch.full((2, 1, 8, 8), 0.25)
    frames = list(sample(tiny_model(), "momentum", shape=(1, 8, 8), n=2, steps=1, start=start))
    assert torch.allclose(frames[0], tiny_model()(start))  # step 1 is model(x)


@api_check()
def test_generate_returns_the_last_frame_the_seeds_and_the_resolved_options():
    import torch

    from aegen.api import generate, sample

    fields = dict(shape=(1, 8, 8), n=3, steps=4, seed=5)
    frames = list(sample(tiny_model(), "momentum", options={"beta": "0.25"}, **fields))
    seen = []
    result = generate(
        tiny_model(),
        "momentum",
        options={"beta": "0.25"},
        on_frame=lambda step, frame: seen.append(step),
        **fields,
    )
    assert torch.equal(result.images, frames[-1])
    assert list(result.seeds) == [5, 6, 7]
    assert result.sampler == "momentum" and result.steps == 4
    assert result.options == {"schedule": "sigmoid", "beta": 0.25, "start": "noise", "warmup": 0}
    assert seen == [1, 2, 3, 4]


@api_check()
def test_a_schedule_named_with_options_is_bound_and_recorded_in_canonical_text():
    import math

    import torch

    from aegen.api import generate, get_schedule

    bound = get_schedule("sigmoid(k=12)")
    c, d = bound(3, 10)
    assert c == pytest.approx(1.0 / (1.0 + math.exp(-12.0 * (0.3 - 0.5)))) and d == 1.0 - c
    assert get_schedule("sigmoid")(3, 10) != (c, d)  # the default k=10 is another ramp

    fields = dict(shape=(1, 8, 8), n=2, steps=5, seed=0)
    by_text = generate(tiny_model(), "momentum", options={"schedule": "sigmoid(k=12)"}, **fields)
    by_key = generate(
        tiny_model(), "momentum", options={"schedule": "sigmoid", "schedule.k": 12}, **fields
    )
    by_default = generate(tiny_model(), "momentum", options={"schedule.k": "12"}, **fields)
    for result in (by_text, by_key, by_default):
        assert result.options["schedule"] == "sigmoid(k=12.0)"
        assert torch.equal(result.images, by_text.images)


@api_check()
def test_values_that_cannot_be_converted_are_config_errors_naming_option_and_sampler():
    assert config_error({"beta": "x"}) == (
        "option 'beta' of sampler 'momentum' expects a finite number, got 'x'"
    )
    assert config_error({"beta": "nan"}) == (
        "option 'beta' of sampler 'momentum' expects a finite number, got 'nan'"
    )
    assert config_error({"warmup": "1.5"}) == (
        "option 'warmup' of sampler 'momentum' expects a whole number, got '1.5'"
    )
    assert config_error({"warmup": "4.0"}) == (  # `"5.0"` and `True` do not convert to int
        "option 'warmup' of sampler 'momentum' expects a whole number, got '4.0'"
    )
    assert config_error({"warmup": True}).startswith(
        "option 'warmup' of sampler 'momentum' expects a whole number, got "
    )


@api_check()
def test_choices_limits_and_check_refuse_values_in_the_documented_words():
    assert config_error({"start": "zeros"}) == (
        "option 'start' of sampler 'momentum' must be one of noise, grey; got 'zeros'"
    )
    assert config_error({"beta": -1}) == (
        "option 'beta' of sampler 'momentum' must be at least 0.0; got -1.0"
    )
    assert config_error({"beta": "2"}) == (
        "option 'beta' of sampler 'momentum' must be at most 0.95; got 2.0"
    )
    assert config_error({"warmup": -2}) == (
        "option 'warmup' of sampler 'momentum' must be at least 0; got -2"
    )
    # the check's ValueError: the option's name and owner, a colon and the exception's message
    assert config_error({"warmup": "3"}) == (
        "option 'warmup' of sampler 'momentum': must be even, got 3"
    )


@api_check()
def test_values_that_pass_are_converted_to_the_default_type():
    from aegen.api import generate

    result = generate(
        tiny_model(),
        "momentum",
        shape=(1, 4, 4),
        n=1,
        steps=1,
        options={"beta": " 0.5 ", "warmup": 4.0, "start": "grey"},
    )
    assert result.options["beta"] == 0.5 and isinstance(result.options["beta"], float)
    assert result.options["warmup"] == 4 and isinstance(result.options["warmup"], int)
    assert result.options["start"] == "grey"


@api_check()
def test_an_unknown_option_is_an_error_listing_the_options():
    message = config_error({"gamma": 1})
    assert message in (
        "sampler 'momentum' has no option 'gamma' (its options: beta, schedule, start, warmup)",
        "sampler 'momentum' has no option 'gamma' (its options: schedule, beta, start, warmup)",
    )


@api_check()
def test_bad_schedules_and_schedule_options_are_config_errors():
    from aegen.api import ConfigError, UsageError, get_schedule

    with pytest.raises(ConfigError, match=r"schedule 'sigmoid' has no option 'q' \(its options: k"):
        get_schedule("sigmoid(q=1)")
    with pytest.raises(ConfigError, match=r"schedule 'linear' takes no options, got k"):
        get_schedule("linear(k=1)")
    with pytest.raises(ConfigError, match=r"option 'k' of schedule 'sigmoid' must be at least 0"):
        get_schedule("sigmoid(k=-1)")
    with pytest.raises(UsageError):
        get_schedule("no-such-schedule")
    # through the sampler, before it runs: `schedule.KEY` binds the default schedule's option,
    # and the `schedule` option's check (get_schedule) refuses an unknown schedule
    assert "option 'k' of schedule 'sigmoid' must be at least 0.0; got -1.0" in config_error(
        {"schedule.k": -1}
    )
    assert config_error({"schedule": "no-such-schedule"}).startswith(
        "option 'schedule' of sampler 'momentum': "
    )
    # `schedule.KEY` for a sampler without a `schedule` option
    assert "'schedule.k'" in config_error({"schedule.k": 3}, sampler="walk")


@api_check()
def test_a_frame_of_the_wrong_shape_is_a_plugin_error_naming_sampler_and_plugin():
    from aegen.api import PluginError, sample

    with pytest.raises(PluginError) as caught:
        list(sample(tiny_model(), "bad-shape", shape=(1, 32, 32), n=2, steps=3))
    assert str(caught.value).endswith(
        "sampler 'bad-shape' (plugin 'aegen_broken') yielded a frame of shape (2, 1, 16, 16) at "
        "step 1; expected (2, 1, 32, 32) (this batch's images, the model's channels and size)"
    )


@api_check()
def test_without_strict_the_refused_hook_is_left_out_and_the_rest_works():
    from aegen.api import UsageError, get_component

    assert get_component("sampler", "bad-shape").plugin == "aegen_broken"
    assert get_component("sampler", "momentum").plugin == "aegen_momentum"
    with pytest.raises(UsageError):
        get_component("objective", "never")


@api_check("strict-broken")
def test_strict_plugins_makes_the_warning_a_plugin_error_at_first_use_of_the_registry():
    from aegen.api import PluginError, get_component

    with pytest.raises(PluginError) as caught:
        get_component("sampler", "schedule")
    assert "plugin 'aegen_broken' (aegen-broken)" in str(caught.value)
    assert "register_objectives" in str(caught.value)


# --------------------------------------------------------------------------------------------
# The commands: `aegen generate` and `aegen train` with the plugin's components.


def test_schedule_option_and_schedule_text_give_identical_images_and_canonical_json(started):
    """`--schedule sigmoid -O schedule.k=12` and `--schedule "sigmoid(k=12)"` are the same; the
    report records the canonical text, `sigmoid(k=12.0)`."""
    for name in ("by-option", "by-text"):
        proc = started[name].result()
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["sampler"] == "momentum"
        assert report["options"] == {
            "schedule": "sigmoid(k=12.0)",
            "beta": 0.25,
            "start": "noise",
            "warmup": 0,
        }
        assert report["seeds"] == [0, 1]
        assert report["grid"] == str(started["out"] / f"{name}.png")
    out = started["out"]
    assert (out / "by-option.png").read_bytes() == (out / "by-text.png").read_bytes()


def test_a_bad_option_value_exits_2_with_one_line_naming_option_and_sampler(started):
    proc = started["bad-option"].result()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "aegen: error: option 'beta' of sampler 'momentum' must be at most 0.95; got 2.0"
    )
    assert "Traceback" not in proc.stderr
    assert not (started["out"] / "bad-option.png").exists()


def test_a_sampler_breaking_the_frame_contract_exits_1_naming_it_and_its_plugin(started):
    proc = started["bad-shape"].result()
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "aegen: error: sampler 'bad-shape' (plugin 'aegen_broken') yielded a frame of shape "
        "(2, 3, 8, 8) at step 1; expected (2, 3, 16, 16) (this batch's images, the model's "
        "channels and size)"
    )
    assert "Traceback" not in proc.stderr
    assert not (started["out"] / "bad-shape.png").exists()


def test_train_records_the_objective_and_its_options_in_the_checkpoint(started):
    """docs/checkpoints.md: `objective` holds `name`, the resolved `options` and `plugin`."""
    proc = started["train"].result()
    assert proc.returncode == 0, proc.stderr
    expected = {"name": "mask", "options": {"fraction": 0.5}, "plugin": "aegen_momentum"}
    assert json.loads(proc.stdout)["objective"] == expected
    assert checkpoint_metadata(started["out"] / "masked.safetensors")["objective"] == expected
