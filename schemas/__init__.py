"""The contract: pydantic models for everything that crosses a boundary.

Phase files, workflow and activity inputs/outputs and the run record are defined here and
nowhere else. The committed ``*.v1.json`` files are generated from these models
(``python -m schemas.export``) and a test fails when they drift.
"""
