"""trtkit: Keras model -> verified TensorRT artifact, built inside pinned NVIDIA containers.

Architecture, host side (no TensorFlow, CUDA or TensorRT needed here):

    cli.py / commands/*   typer commands: options in, results rendered
    options.py            the options, declared and parsed once
    plan.py               BuildPlan: validated options -> plan.json; the choice of target
    session.py            the verbs: build, inspect, bench, check (one boxed container each)
    pipeline_run.py       one run of scripts/pipeline.py: inputs in, events, exit, caches and artifacts out
    docker_runner.py      the Docker SDK: connect, pull, build images, run a hardened Box
    transfer.py           files into a container and, under the contract's rules, out of it
    toolchain.py          the derived toolchain image (setup runs once per base image)
    staging.py            --out: what may be replaced, the lock, atomic publication
    events.py             the container's output -> build record + live display (as text)
    manifest.py, report.py  trtkit.json, report.md / report.html

Container side: scripts/pipeline.py runs scripts/trtkit_steps/* in the container. The host imports their
contract, scripts/trtkit_steps/contract.py, as `trtkit_steps.contract` (installed beside trtkit).
"""
__version__ = "0.1.0"
