"""`python -m aegen`, and `torchrun ... -m aegen`: the CLI where the script is not a Python file
(a pyenv or conda shim is a shell script, which torchrun cannot run)."""

from .cli import main

main()
