"""The Claude Code fixtures of this package: `fake` (the fake Anthropic server) and `world`
(the real CLI talking to it), shared with every module that drives the CLI."""

from __future__ import annotations

from tests.real_agents import claude_fake, claude_world  # noqa: F401 (pytest fixtures)
