"""TensorRT for the engine step, one concern per module.

    profiles      optimization profiles from io.json and --shapes
    settings      what to build: precision, TF32, workspace, tactic sources, tolerances, cache names
    calibration   INT8 calibration data and its cache
    polygraphy_api  building, running and comparing with Polygraphy (TensorRT 8.0 and newer)
    trtexec       building and running with trtexec (stacks without the Python API; TensorRT 11 flags)
    runner        running a built engine repeatedly, timed (the benchmark)

The step itself, which picks the Python API or trtexec, is trtkit_steps/engine.py.
"""
