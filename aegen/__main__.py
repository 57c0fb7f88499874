"""`python -m aegen`, and `torchrun ... -m aegen`: the CLI where the script is not a Python file
(a pyenv or conda shim is a shell script, which torchrun cannot run)."""

import importlib.util
import os
import sys


def _own_package() -> None:
    """Make `aegen` this package, not a folder that happens to be called aegen.

    `python -m` puts the working directory first on sys.path. Run from a folder that holds a
    directory named `aegen` with no __init__.py (say, a clone of this repository), Python's
    path finder takes that directory as a namespace package `aegen` before the finder of an
    editable install (which setuptools appends after it) is asked. This file is still found,
    through the editable finder, but `aegen` itself (its __init__, __version__) is missing and
    the clone's `plugins/` folder would shadow the module aegen.plugins. So: put the real
    package, the one holding this file, in its place before importing anything from it.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    name = __spec__.parent if __spec__ is not None and __spec__.parent else "aegen"
    package = sys.modules.get(name)
    if package is not None and getattr(package, "__file__", None):
        return  # a regular package: the usual case
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    module = importlib.util.module_from_spec(spec)
    for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[stale]
    sys.modules[name] = module
    spec.loader.exec_module(module)


_own_package()

from .cli import main  # noqa: E402  (after the package is in place)

main()
