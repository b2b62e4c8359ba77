"""Shopify's cost model: what a query is charged up front and after, and the leaky bucket that throttles it."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from retreasure_sim.servers.shopify.graphql import CONNECTIONS, Call

MAX_QUERY_COST = 1000  # Shopify's single-query cap, whatever the bucket


# -- throttling ----------------------------------------------------------------------------------


class LeakyBucket:
    """Shopify's cost bucket: points are taken per query and restored at a steady rate up to the maximum."""

    def __init__(self, size: float, restore_rate: float) -> None:
        self.size = size
        self.restore_rate = restore_rate
        self._available = float(size)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, points: float) -> bool:
        """Spend ``points`` if the bucket holds them; a refused query spends nothing."""
        with self._lock:
            self._refill()
            if self._available < points:
                return False
            self._available -= points
            return True

    def give_back(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + max(0.0, points))

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def status(self) -> dict[str, Any]:
        # Rounded down: a client pacing on it then never asks for points that are not there yet.
        return {
            "maximumAvailable": float(self.size),
            "currentlyAvailable": math.floor(self.available()),
            "restoreRate": float(self.restore_rate),
        }


def nested_objects(node: Any) -> int:
    """Objects a node's nested connections returned: what Shopify's actual cost counts beyond the node."""
    if isinstance(node, list):
        return sum(nested_objects(item) for item in node)
    if not isinstance(node, dict):
        return 0
    inner = node.get("nodes")
    own = len(inner) if isinstance(inner, list) else 0
    return own + sum(nested_objects(value) for value in node.values())


def requested_cost(call: Call) -> int:
    """What Shopify charges up front: a point per object the query could return."""
    if call.field not in CONNECTIONS:
        return 1
    first = call.args.get("first")
    return 1 + (first if isinstance(first, int) else 0) * (1 + sum(call.nested_firsts))
