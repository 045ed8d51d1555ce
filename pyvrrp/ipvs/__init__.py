"""IPVS (Linux Virtual Server) programming: pure planner, kernel access, health-check manager."""

from __future__ import annotations
