"""A PBX simulator that speaks real AMI and AudioSocket, for tests, benchmarks and demos."""

from televox_pbx.sim.pbx import Simulator
from televox_pbx.sim.scenario import Behaviour, Callee, Scenario, ScriptItem, load_scenario
from televox_pbx.sim.speech import SpeechSource, SpeechUnavailable

__all__ = ["Behaviour", "Callee", "Scenario", "ScriptItem", "Simulator", "SpeechSource",
           "SpeechUnavailable", "load_scenario"]
