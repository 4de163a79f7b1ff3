#!/usr/bin/env bash
# The d2l book's own code, both editions, for tests/test_d2l.py: each edition unpacked into its own
# folder (two editions cannot share one environment under the name `d2l`), and what they import
# beside seqcore's environment in a third, all put on the PYTHONPATH of the subprocess that runs
# the book's code (never installed into the project's environment).
#
# Usage: tests/scripts/setup_d2l_env.sh DIR [PYTHON]      then: SEQCORE_D2L_ENV=DIR pytest tests/test_d2l.py
#   DIR/d2l-0.17.6, DIR/d2l-1.0.3: the wheels, unpacked (pip download --no-deps, unzip)
#   DIR/deps: pandas, scipy, IPython and matplotlib-inline with their own dependencies, --no-deps
#   and pinned, so that nothing replaces the NumPy 1.23.5 / matplotlib that MXNet 1.9.1 needs.
# PyTorch's edition also imports torchvision, which does not install beside the CPU torch 2.13 here;
# the tests put an empty stand-in on the path (tests/d2l_env.py), as the book's text never calls it.
set -euo pipefail
dir=${1:?usage: setup_d2l_env.sh DIR [PYTHON]}
python=${2:-python}
mkdir -p "$dir"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
for version in 0.17.6 1.0.3; do
    "$python" -m pip download --quiet --no-deps -d "$wheels" "d2l==$version"
    rm -rf "$dir/d2l-$version"
    "$python" -m zipfile -e "$wheels/d2l-$version-py3-none-any.whl" "$dir/d2l-$version"
done
"$python" -m pip install --quiet --no-deps --target "$dir/deps" \
    pandas==2.0.3 scipy==1.10.1 pytz==2026.6 \
    ipython==9.18.1 ipython_pygments_lexers==1.1.1 traitlets==5.16.1 decorator==5.3.1 jedi==0.20.1 \
    parso==0.8.7 pexpect==4.9.0 ptyprocess==0.7.0 prompt_toolkit==3.0.53 wcwidth==0.9.4 \
    stack-data==0.6.3 asttokens==3.0.2 executing==2.3.0 pure_eval==0.2.4 matplotlib-inline==0.1.6
echo "d2l editions in $dir: run the tests with SEQCORE_D2L_ENV=$dir"
