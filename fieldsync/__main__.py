"""`python -m fieldsync ...`: the same as the `fieldsync` command."""

from fieldsync.cli import main

main()
