"""The SDQN orchestration layer (main paper sec. V-A.1): industrial intents into network policies.

"It translates high-level industrial intents (e.g., 'Connect Assembly Line A to Cloud B with
maximal security') into network policies." An intent here is one phrase over a scenario's sites:

    connect SRC to DST[ with CLAUSE][, CLAUSE]...

with clauses, each at most once (``not via`` may repeat):

- a traffic class, ``Type-I`` .. ``Type-IV`` (Table 1);
- a security level, ``maximal security`` (the one-time pad: Type-I), ``high security``
  (AES-256-GCM rekeyed every 10 s: Type-II), ``standard security`` (AES-128 batch keys:
  Type-III) or ``basic security`` (PQC, no quantum key: Type-IV): Table 1's security column,
  so a class and a level must agree and either implies the other;
- a residency, ``EU only`` or ``DE/FR only`` (the data stays in these jurisdictions; EU: the 27
  member states), and ``not via GB/US`` (it never transits these): sec. IV-B's "data residency
  rules (e.g., GDPR) may forbid routing certain payloads through gateways in specific
  jurisdictions";
- a rate, ``at 64 kbit/s`` (bit/s, kbit/s, Mbit/s or Gbit/s);
- a name, ``as NAME`` (default ``SRC-DST``).

The policy (:class:`Policy`) is what the twin enforces: the flow's traffic class (its security
mode, latency target and key demand: twin.network.traffic) and the jurisdictions its data must
not transit: every jurisdiction of the scenario's sites outside the residency, plus the ``not
via`` ones (routing skips their nodes as intermediate hops, the shield and the audit hold paths
to it: twin.control.shield). With a rate it is a flow of the scenario's ``traffic`` section
(:meth:`Policy.traffic_entry`; ``qntwin intent`` prints it). An intent that cannot hold (a site
the scenario lacks, an endpoint outside its own residency, a class and a level that disagree)
is refused with the reason and the fix, never turned into a policy that breaks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twin.network.traffic import TrafficClass, requirements

__all__ = ["EU_MEMBER_STATES", "SECURITY_LEVELS", "IntentError", "Policy", "compile_intent"]

# the 27 member states of the European Union, ISO 3166-1 alpha-2 (Greece's is GR; EU documents
# write EL), as listed at european-union.europa.eu, "EU countries" (2026)
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
REGIONS = {"EU": EU_MEMBER_STATES}

# Table 1's security column, level by level, and the class whose keys give it
SECURITY_LEVELS = {
    "maximal": TrafficClass.TYPE_I,  # one-time pad: information-theoretic
    "high": TrafficClass.TYPE_II,  # AES-256-GCM, a quantum key every 10 s
    "standard": TrafficClass.TYPE_III,  # AES-128 batch keys
    "basic": TrafficClass.TYPE_IV,  # PQC / TLS: computational, no quantum key
}
_RATE_UNITS = {"bit/s": 1.0, "kbit/s": 1e3, "mbit/s": 1e6, "gbit/s": 1e9}
_CLAUSES = (
    "a traffic class (Type-I .. Type-IV), a security level (maximal, high, standard or basic "
    "security), a residency (EU only, DE/FR only, not via GB), a rate (at 64 kbit/s) or a name "
    "(as NAME)"
)


class IntentError(ValueError):
    """An intent that cannot be turned into a policy; the message says why and what to write."""


@dataclass(frozen=True)
class Policy:
    """What an intent asks of the network (module docstring)."""

    intent: str
    name: str
    src: str
    dst: str
    traffic_class: TrafficClass
    security_mode: str
    """the class's (Table 1): otp, aes-256-gcm, aes-128-batch or pqc"""
    forbid_transit: tuple[str, ...]
    """jurisdictions the data must not transit, sorted"""
    rate_bps: float | None

    def traffic_entry(self) -> dict:
        """The policy as one flow of a scenario's ``traffic.flows`` (the schema's TrafficFlow:
        ``qntwin validate`` accepts a scenario with it added). IntentError without a rate."""
        if self.rate_bps is None:
            raise IntentError(
                f"intent {self.intent!r} gives no rate, which a flow of the scenario's traffic "
                "needs: add one, e.g. ', at 64 kbit/s'"
            )
        entry = {
            "name": self.name,
            "traffic_class": self.traffic_class.value,
            "src": self.src,
            "dst": self.dst,
            "rate_bps": self.rate_bps,
        }
        if self.forbid_transit:
            entry["forbid_transit"] = list(self.forbid_transit)
        return entry


def compile_intent(text: str, scenario) -> Policy:
    """The policy of the intent phrase ``text`` over ``scenario``'s sites (module docstring);
    IntentError naming what does not fit and how to write it."""
    if not isinstance(text, str) or not text.strip():
        raise IntentError("give an intent: 'connect SRC to DST, CLAUSE, ...'")
    head, *clauses = [part.strip() for part in text.strip().split(",")]
    match = re.fullmatch(
        r"connect\s+(\S+)\s+to\s+(\S+)(?:\s+with\s+(.+))?", head, flags=re.IGNORECASE
    )
    if match is None:
        raise IntentError(
            f"intent {text!r} must start 'connect SRC to DST' (two site names), got {head!r}"
        )
    sites = {site.name: site.jurisdiction for site in scenario.sites}
    src, dst, with_clause = match.groups()
    if with_clause is not None:  # (the paper's "... to Cloud B with maximal security")
        clauses.insert(0, with_clause.strip())
    for end in (src, dst):
        if end not in sites:
            raise IntentError(
                f"intent {text!r}: scenario {scenario.name!r} has no site {end!r}; its sites: "
                f"{', '.join(sites)}"
            )
    if src == dst:
        raise IntentError(f"intent {text!r} connects {src!r} to itself: name two sites")

    given: dict[str, object] = {}
    for clause in clauses:
        kind, value = _clause(text, clause)
        if kind in given and kind != "not via":
            raise IntentError(f"intent {text!r} gives more than one {kind}: keep one")
        if kind == "not via":
            value = given.get(kind, frozenset()) | value
        given[kind] = value

    level = given.get("security level")
    traffic_class = given.get("traffic class")
    if level is not None and traffic_class is not None and SECURITY_LEVELS[level] != traffic_class:
        implied = SECURITY_LEVELS[level]
        raise IntentError(
            f"intent {text!r}: {level} security is {implied.label}'s "
            f"({requirements(implied).security_mode}), not {traffic_class.label}'s "
            f"({requirements(traffic_class).security_mode}): give one of the two"
        )
    if level is None and traffic_class is None:
        raise IntentError(
            f"intent {text!r} says neither a traffic class nor a security level: add one, "
            "e.g. ', Type-I' or ', maximal security'"
        )
    traffic_class = traffic_class or SECURITY_LEVELS[level]

    region, within = given.get("residency", (None, None))
    never = given.get("not via", frozenset())
    for end in (src, dst):
        where = sites[end]
        if where in never:
            why = f"which the intent's data must not transit (not via {where})"
        elif within is not None and where not in within:
            why = f"outside {region}, where the intent keeps its data"
        else:
            continue
        raise IntentError(
            f"intent {text!r}: {end} is in {where}, {why}: no path can hold it; change the "
            "residency or the sites"
        )
    forbidden = set(never)
    if within is not None:
        forbidden |= {j for j in sites.values() if j not in within}
    return Policy(
        intent=text.strip(),
        name=given.get("name") or f"{src}-{dst}",
        src=src,
        dst=dst,
        traffic_class=traffic_class,
        security_mode=requirements(traffic_class).security_mode,
        forbid_transit=tuple(sorted(forbidden)),
        rate_bps=given.get("rate"),
    )


def _clause(text: str, clause: str) -> tuple[str, object]:
    """(kind, value) of one clause of the intent ``text``."""
    words = clause.split()
    lowered = clause.lower()
    if re.fullmatch(r"type[-_ ]?(i|ii|iii|iv)", lowered):
        return "traffic class", TrafficClass.parse(clause)
    if len(words) == 2 and words[1].lower() == "security":
        level = words[0].lower()
        if level not in SECURITY_LEVELS:
            raise IntentError(
                f"intent {text!r}: unknown security level {words[0]!r}; allowed: "
                f"{', '.join(SECURITY_LEVELS)} security"
            )
        return "security level", level
    if len(words) == 2 and words[1].lower() == "only":
        return "residency", (words[0].upper(), _jurisdictions(text, words[0]))
    if len(words) == 3 and lowered.startswith("not via "):
        return "not via", _jurisdictions(text, words[2])
    if len(words) == 3 and words[0].lower() == "at":
        return "rate", _rate_bps(text, words[1], words[2])
    if len(words) == 2 and words[0].lower() == "as":
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", words[1]):
            raise IntentError(
                f"intent {text!r}: name {words[1]!r} must be letters, digits, '-', '_' or '.'"
            )
        return "name", words[1]
    raise IntentError(f"intent {text!r}: cannot read {clause!r}; a clause is {_CLAUSES}")


def _jurisdictions(text: str, spec: str) -> frozenset[str]:
    """``EU`` or ``DE/FR``: the jurisdictions named."""
    codes: set[str] = set()
    for code in spec.upper().split("/"):
        if code in REGIONS:
            codes |= REGIONS[code]
        elif re.fullmatch(r"[A-Z]{2}", code):
            codes.add(code)
        else:
            raise IntentError(
                f"intent {text!r}: {code!r} is no jurisdiction; give ISO 3166-1 alpha-2 codes "
                f"joined by '/' (DE/FR) or {', '.join(REGIONS)}"
            )
    return frozenset(codes)


def _rate_bps(text: str, number: str, unit: str) -> float:
    scale = _RATE_UNITS.get(unit.lower())
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if scale is None or not value > 0 or value == float("inf"):
        raise IntentError(
            f"intent {text!r}: rate 'at {number} {unit}' must be a positive number and one of "
            "bit/s, kbit/s, Mbit/s, Gbit/s (e.g. 'at 64 kbit/s')"
        )
    return value * scale
