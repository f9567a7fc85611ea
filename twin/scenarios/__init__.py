"""Scenario files (YAML, packaged here) and their schema.

``load_scenario(path)`` validates a file into a frozen :class:`Scenario`; every user mistake
raises :class:`ScenarioError` with a printable message. ``list_scenarios()`` lists the packaged
files (``small``, ``mega``, ``micius-xinglong``).
"""

from twin.scenarios.loader import (
    ScenarioError,
    ScenarioInfo,
    list_scenarios,
    load_scenario,
    packaged_scenario_path,
    parse_scenario,
    scenario_from_dict,
)
from twin.scenarios.schema import Scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioInfo",
    "list_scenarios",
    "load_scenario",
    "packaged_scenario_path",
    "parse_scenario",
    "scenario_from_dict",
]
