"""The environment an agent is started with, the one way: the daemon's environment, the
agent's configured `env`, what its adapter adds, and the instance marker that lets the
process sweep find every descendant (`bridge.process.tree`). `open_agent_process` then
completes it from the login shell (`bridge.envsetup`); `started_env` is that result, for
those who look at an agent without starting it (doctor, the session catalog)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from bridge import envsetup
from bridge.process.tree import INSTANCE_ID, MARKER_ENV


def agent_env(configured: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(configured)
    if extra:
        env.update(extra)
    env[MARKER_ENV] = INSTANCE_ID
    return env


def started_env(configured: Mapping[str, str]) -> dict[str, str]:
    env = agent_env(configured)
    environment = envsetup.current()
    return environment.complete(env) if environment is not None else env
