#!/usr/bin/env python3
"""Launcher: `python cli.py ...` runs fieldsync from a checkout without installing it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fieldsync.cli import main

if __name__ == "__main__":
    main()
