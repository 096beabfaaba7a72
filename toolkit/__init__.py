"""trtkit: Keras model -> verified TensorRT artifact, built inside pinned NVIDIA containers.

Architecture, host side (no TensorFlow, CUDA or TensorRT needed here):

    cli.py / commands/*   typer commands: parse options, print results
    plan.py               BuildPlan: validated options -> what the container runs
    docker_runner.py      the Docker SDK: connect, pull, run a container, clean up
    toolchain.py          the derived toolchain image (setup runs once per base image)
    staging.py            work folder and atomic publication of --out
    events.py             the container's event stream -> live display + build record
    manifest.py, report.py  trtkit.json, report.md / report.html

Container side: scripts/pipeline.py runs scripts/trtkit_steps/* in the container.
"""
__version__ = "0.1.0"
