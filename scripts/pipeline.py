"""Entry point inside the container: run the build's steps, one process each.

    python3 /trtkit/scripts/pipeline.py /trtkit/work/plan.json

Each stage runs in its own process (TensorFlow keeps the memory it takes, and
the engine stage must run where only TensorRT and numpy exist). Their output
goes through this process, so the host sees whole lines, events included. The
exit code is that of the first stage that fails.
"""
import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from trtkit_steps import contract  # noqa: E402
from trtkit_steps.events import emit, run_relayed  # noqa: E402


def run_stage(module, plan_path):
    env = dict(os.environ, PYTHONPATH=SCRIPTS, PYTHONUNBUFFERED="1")
    return run_relayed([sys.executable, "-m", "trtkit_steps." + module, plan_path], lambda line: None, env)


def main():
    plan_path = sys.argv[1]
    try:
        plan = contract.read_plan(plan_path)
    except contract.PlanMismatch as e:
        emit("error", kind="PlanMismatch", message=str(e), details={})
        sys.exit(contract.EXIT_STEP_FAILED)
    os.makedirs(os.path.join(os.path.dirname(plan_path), contract.ARTIFACTS), exist_ok=True)
    emit("versions", python="%d.%d.%d" % sys.version_info[:3])
    for module in contract.stages(plan):
        code = run_stage(module, plan_path)
        if code != 0:
            if code < 0:  # killed by a signal: the stage could not say why itself
                emit("error", kind="StepError", message="stage %s was killed by signal %d" % (module, -code),
                     details={})
                code = contract.EXIT_STEP_FAILED
            sys.exit(code)
    emit(contract.FINAL_EVENT)


if __name__ == "__main__":
    main()
