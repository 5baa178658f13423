#!/usr/bin/env bash
# Regenerates the checked-in Python stubs from proto/. The one way to make them:
# CI runs this and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc --version >/dev/null
for pkg in exchange/v1 catalog/v1; do
  rm -f "$pkg"/*_pb2.py "$pkg"/*_pb2.pyi "$pkg"/*_pb2_grpc.py
  python -m grpc_tools.protoc -Iproto \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    proto/"$pkg"/*.proto
  touch "$pkg"/__init__.py
done
