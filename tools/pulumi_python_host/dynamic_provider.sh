#!/bin/sh
# pulumi-resource-pulumi-python: serves a program's dynamic providers. The engine starts it in
# the project directory; the pickled providers import the project's own modules from there, so
# it must run under the project's interpreter: the virtualenv the engine names in
# PULUMI_RUNTIME_VIRTUALENV (from Pulumi.yaml), else ./venv, else python3.
set -eu
if [ -n "${PULUMI_RUNTIME_VIRTUALENV:-}" ]; then
  case "$PULUMI_RUNTIME_VIRTUALENV" in
    /*) python="$PULUMI_RUNTIME_VIRTUALENV/bin/python" ;;
    *) python="$(pwd)/$PULUMI_RUNTIME_VIRTUALENV/bin/python" ;;
  esac
elif [ -x ./venv/bin/python ]; then
  python=./venv/bin/python
else
  python="${PULUMI_PYTHON_CMD:-python3}"
fi
exec "$python" -u -m pulumi.dynamic "$@"
