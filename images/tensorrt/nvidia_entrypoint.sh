#!/bin/bash
# Like NVIDIA's /opt/nvidia/nvidia_entrypoint.sh: a banner on stdout, then the command (bash by default).
cat <<BANNER

=====================
== TensorRT ==
=====================

Stand-in for NVIDIA Release 8.6-py3, built by trtkit from public packages (images/build-tensorrt.sh)
TensorRT Version ${TRT_VERSION}
BANNER
if ! ls /dev/nvidia[0-9]* >/dev/null 2>&1; then
  echo "WARNING: The NVIDIA Driver was not detected.  GPU functionality will not be available."
  echo "   Use the NVIDIA Container Toolkit to start this container with GPU support."
fi
echo
[ $# -eq 0 ] && set -- /bin/bash
exec "$@"
