"""Synthetic VST-like demo data with known defects (``python -m curation demo``)."""

from curation.demo.generate import DemoConfig, DemoSummary, allocate, build_demo, generate_demo

__all__ = ["DemoConfig", "DemoSummary", "allocate", "build_demo", "generate_demo"]
