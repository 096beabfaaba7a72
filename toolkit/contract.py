"""The host's view of scripts/trtkit_steps/contract.py: the very file the containers run.

Loaded by path, so the contract is written once and ships once (in the wheel
with the other scripts); `from .contract import contract` gives the module.
"""
import importlib.util

from .resources import scripts_dir


def _load():
    spec = importlib.util.spec_from_file_location("trtkit_contract", scripts_dir() / "trtkit_steps" / "contract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _load()
