"""trtkit's in-container steps.

Run by the container's own Python, 3.6 (19.xx tags) to 3.12: no syntax or
library newer than 3.6, but for the library in the modules that run only with
TensorRT 8 (Python 3.8; tests/test_scripts_py36.py enforces both). Each module
imports only what its step needs, so the engine step runs where only
TensorRT and numpy exist.
"""
