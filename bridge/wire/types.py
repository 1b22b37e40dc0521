"""The one name for a decoded JSON object, shared by every layer from the wire up."""

from __future__ import annotations

from typing import Any

JsonObj = dict[str, Any]
