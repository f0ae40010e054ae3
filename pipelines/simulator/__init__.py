"""Seeded simulator of a plant's MES history, and emitters that write it as Opcenter, Plex or file extracts."""

from pipelines.simulator.config import DefectKind, PhysicsParams, SimulationConfig
from pipelines.simulator.defects import PlantedDefect
from pipelines.simulator.emit import emit_extracts
from pipelines.simulator.history import PlantHistory, simulate
from pipelines.simulator.notes import PlantedEntity

__all__ = [
    "DefectKind",
    "PhysicsParams",
    "PlantHistory",
    "PlantedDefect",
    "PlantedEntity",
    "SimulationConfig",
    "emit_extracts",
    "simulate",
]
