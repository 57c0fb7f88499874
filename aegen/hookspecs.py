"""The hooks a plugin may implement. Each receives a callback and registers through it."""

import pluggy

hookspec = pluggy.HookspecMarker("aegen")
hookimpl = pluggy.HookimplMarker("aegen")


@hookspec
def register_architectures(register):
    """Register autoencoders: register(name, build, description=..., defaults={...})."""


@hookspec
def register_samplers(register):
    """Register samplers: register(name, sampler, description=..., options={...})."""


@hookspec
def register_schedules(register):
    """Register noise schedules: register(name, schedule, description=...)."""


@hookspec
def register_data_sources(register):
    """Register training data readers: register(name, load, description=..., detect=...)."""


@hookspec
def register_objectives(register):
    """Register training objectives: register(name, make_input, description=..., options={...})."""


@hookspec
def register_commands(app):
    """Add commands to the Typer app of the `aegen` command line."""
