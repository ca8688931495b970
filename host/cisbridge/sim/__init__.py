"""A GAS/SSB simulator for tests and demos (``cisbridge sim``); not NHS software."""

from cisbridge.sim.server import FAULTS, Fault, Simulator, SimulatorError, ticket_ref

__all__ = ["FAULTS", "Fault", "Simulator", "SimulatorError", "ticket_ref"]
