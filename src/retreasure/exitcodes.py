"""The exit codes of every `retreasure` command, one scheme for all: a scheduler or a shell script can tell a
clean run from one that needs a person without reading the output. docs/runbook.md explains each."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # everything asked for was done; malformed records quarantined row by row are normal operation
    FAILED = 1  # the command could not do its work (a source or model failed, a setting is wrong)
    USAGE = 2  # the command line was wrong (unknown option, bad date); nothing was done
    PARTIAL = 3  # done, but something was refused or quarantined whole (a file) or blocked (downstream models)
