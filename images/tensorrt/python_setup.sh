#!/bin/bash
# NVIDIA's python_setup.sh installs the Python samples' dependencies. In this image TensorRT's Python
# package and numpy are already installed, and there is no network to install more from.
echo "python_setup.sh: TensorRT ${TRT_VERSION} Python bindings are installed; nothing to do"
