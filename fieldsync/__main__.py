"""`python -m fieldsync ...`: the same as the `fieldsync` command."""

from .cli import main

main()
