#!/bin/sh
# Stand-in for NVIDIA's /opt/tensorrt/python/python_setup.sh (19.xx-22.xx tags).
# The real script installs the Python sample dependencies (TensorFlow on 19.07,
# uff, graphsurgeon); here the CPU toolchain is already in the image. Each run
# appends a line to SETUP_TRACE so tests can count how often setup ran.
set -e
echo "python_setup.sh ran $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> /opt/tensorrt/python/setup-runs.log
echo "python_setup.sh: CPU toolchain already present ($(python3 -c 'import tensorflow as t; print("tensorflow", t.__version__)' 2>/dev/null))"
