# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Request counters and fault injection for the local AWS endpoint.

Counters are keyed ``service:Action`` and count every request that reached the endpoint; faulted
requests are counted again separately. Faults are either random (latency, throttling rate, 5xx rate,
optionally limited to services/actions, reproducible with a seed) or explicit (``inject``: answer the
next N calls of an action with a given error, optionally only in one region, as an IAM policy with an
``aws:RequestedRegion`` condition denies an action in one region).
"""

import random
import threading
from collections import Counter
from dataclasses import dataclass

MUTATING_PREFIXES = (
    "Create", "Delete", "Put", "Start", "Complete", "Modify", "Enable", "Disable", "Reset", "Register",
    "Deregister", "Copy", "Attach", "Detach", "Run", "Terminate", "Stop", "Publish", "Restore",
)


def is_mutating(action):
    """True when an action name (``Action`` or ``service:Action``) names a write."""
    return action.rsplit(":", 1)[-1].startswith(MUTATING_PREFIXES)


class Counters:
    """Thread-safe per ``service:Action`` request counts, with a separate count of faulted ones."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = Counter()
        self._faulted = Counter()

    def record(self, key, faulted):
        """Count one request (and one faulted request when ``faulted``)."""
        with self._lock:
            self._counts[key] += 1
            if faulted:
                self._faulted[key] += 1

    def as_dict(self):
        """``{"counts": {...}, "faulted": {...}}``, sorted by key."""
        with self._lock:
            return {"counts": dict(sorted(self._counts.items())), "faulted": dict(sorted(self._faulted.items()))}

    def clear(self):
        """Forget every count."""
        with self._lock:
            self._counts.clear()
            self._faulted.clear()


@dataclass(frozen=True)
class FaultPolicy:
    """Random faults applied to the requests it selects (all requests when no filter is set)."""

    latency: float = 0.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    services: frozenset = frozenset()
    actions: frozenset = frozenset()
    seed: int | None = None

    def selects(self, service, action):
        """True when the policy applies to this call; ``actions`` may hold ``Action`` or ``service:Action``."""
        if self.services and service not in self.services:
            return False
        return not self.actions or action in self.actions or f"{service}:{action}" in self.actions

    def as_dict(self):
        """JSON-ready form."""
        return {
            "latency": self.latency, "throttle_rate": self.throttle_rate, "error_rate": self.error_rate,
            "services": sorted(self.services), "actions": sorted(self.actions), "seed": self.seed,
        }


@dataclass
class InjectedError:
    """An explicit error for the next ``remaining`` calls of ``action`` (every call when None).

    With ``region`` set, only calls signed for that region are answered (and counted down).
    """

    action: str
    status: int
    code: str
    message: str
    remaining: int | None = 1
    service: str | None = None
    reason: str | None = None
    region: str | None = None

    def selects(self, service, action, region=None):
        """True when this rule answers the call."""
        if self.service and self.service != service:
            return False
        if self.region and self.region != region:
            return False
        return self.action in (action, f"{service}:{action}")

    def as_dict(self):
        """JSON-ready form."""
        return dict(vars(self))


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: sleep ``delay`` seconds, then fail with ``kind`` if set."""

    delay: float = 0.0
    kind: str | None = None  # "throttle", "error" or "injected"
    injected: InjectedError | None = None


class FaultInjector:
    """Holds the fault policy and the injected errors, and decides the fate of each request."""

    def __init__(self):
        self._lock = threading.Lock()
        self._policy = FaultPolicy()
        self._random = random.Random()
        self._injected = []

    def configure(self, latency=0.0, throttle_rate=0.0, error_rate=0.0, services=None, actions=None, seed=None):
        """Replace the random fault policy; rates are fractions of the selected requests."""
        for name, rate in (("throttle_rate", throttle_rate), ("error_rate", error_rate)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if float(throttle_rate) + float(error_rate) > 1.0:
            raise ValueError("throttle_rate + error_rate must not exceed 1")
        if float(latency) < 0:
            raise ValueError("latency must not be negative")
        policy = FaultPolicy(
            float(latency), float(throttle_rate), float(error_rate),
            frozenset(services or ()), frozenset(actions or ()), seed,
        )
        with self._lock:
            self._policy = policy
            self._random = random.Random(seed)

    def inject(self, action, status, code, message, count=1, service=None, reason=None, region=None):
        """Answer the next ``count`` calls of ``action`` (all of them when ``count`` is None) with an error.

        ``region`` limits the rule to calls signed for that region (None: every region).
        """
        if count is not None and int(count) < 1:
            raise ValueError("count must be a positive integer or None")
        if region is not None and not isinstance(region, str):
            raise ValueError("region must be a region name or None")
        rule = InjectedError(action, int(status), code, message, None if count is None else int(count), service, reason, region or None)
        with self._lock:
            self._injected.append(rule)

    def clear(self):
        """Drop the random policy and every injected error."""
        with self._lock:
            self._policy = FaultPolicy()
            self._random = random.Random()
            self._injected.clear()

    def as_dict(self):
        """The current policy and pending injected errors."""
        with self._lock:
            return {"policy": self._policy.as_dict(), "injected": [rule.as_dict() for rule in self._injected]}

    def decide(self, service, action, region=None):
        """Decide the fate of one request (signed for ``region``); injected errors take precedence over random faults."""
        with self._lock:
            policy = self._policy
            delay = policy.latency if policy.selects(service, action) else 0.0
            for rule in self._injected:
                if rule.selects(service, action, region):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._injected.remove(rule)
                    return FaultDecision(delay, "injected", rule)
            if not policy.selects(service, action) or not (policy.throttle_rate or policy.error_rate):
                return FaultDecision(delay)
            draw = self._random.random()
        if draw < policy.throttle_rate:
            return FaultDecision(delay, "throttle")
        if draw < policy.throttle_rate + policy.error_rate:
            return FaultDecision(delay, "error")
        return FaultDecision(delay)
