#!/bin/sh
# Runs once per toolchain image (docker build), never per trtkit build.
set -e
# Offline derivation (trtkit images derive --wheelhouse, TRTKIT_WHEELHOUSE): every pip
# call below, python_setup.sh's included, installs from the wheelhouse and nothing else.
WHEELHOUSE=/opt/trtkit/toolchain/wheelhouse
if [ -d "$WHEELHOUSE" ]; then
  echo "trtkit: installing from the wheelhouse only ($(ls "$WHEELHOUSE" | wc -l) wheels, no index)"
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"
fi
# NVIDIA's sample-dependency installer: on 19.xx-20.xx tags it is how TensorFlow
# gets into the image (the origin post relied on it). Newer tags may lack it.
if [ -x /opt/tensorrt/python/python_setup.sh ]; then
  echo "trtkit: running /opt/tensorrt/python/python_setup.sh"
  /opt/tensorrt/python/python_setup.sh
else
  echo "trtkit: no /opt/tensorrt/python/python_setup.sh in this image"
fi
python3 /opt/trtkit/toolchain/install_requirements.py
