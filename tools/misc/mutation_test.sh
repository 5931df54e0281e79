#!/usr/bin/env bash
# Mutation testing of one core module with mutmut (configured in setup.cfg):
#   bash tools/misc/mutation_test.sh MODULE [EVERY]
# MODULE: box_fitting | cam | box_file | imagenet_pseudo_box | image_list |
#         checkpoint | transfer | splits | stats.  EVERY=N runs about one mutant in N (those whose number
#         ends in a digit divisible by 10/N: N = 2, 5 or 10), a uniform
#         sample over every function of a large module; default all.
# Prints the module's killed / survived counts and score; `mutmut show NAME`
# prints a survivor's diff, `mutmut browse` browses them;
# MUTATION_REPORT_ONLY=1 prints the last results again without running.  Each mutant runs
# only the tests that call the mutated function (mutmut's first run records
# them in mutants/mutmut-stats.json, about a minute).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 MODULE [EVERY]" >&2
    exit 2
fi
case $1 in
    box_fitting | cam) dotted=projects.dap.dap.models.$1 ;;
    transfer) dotted=projects.dap.dap.engine.transfer ;;
    box_file) dotted='projects.dap.dap.datasets.box_file.*' ;;  # its 5 modules
    imagenet_pseudo_box | image_list) dotted=projects.dap.dap.datasets.$1 ;;
    checkpoint) dotted=projects.dap.dap.utils.checkpoint ;;
    splits | stats) dotted=projects.dap.dap.fewshot.$1 ;;
    *) echo "unknown module $1 (see $0's header)" >&2; exit 2 ;;
esac
case ${2:-1} in
    1) digits='' ;;
    2) digits='[02468]' ;;
    5) digits='[05]' ;;
    10) digits='0' ;;
    *) echo "EVERY must be 1, 2, 5 or 10, got $2" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
if [ -z "${VIRTUAL_ENV:-}" ]; then
    # shellcheck disable=SC1091
    source "${DAP_VENV:-$ROOT/.venv}/bin/activate"
fi
export PYTHONPATH=$ROOT OMP_NUM_THREADS=1
glob="$dotted.x*__mutmut_*$digits"
mkdir -p mutants
log=mutants/mutation_test.log
if [ -n "${MUTATION_REPORT_ONLY:-}" ]; then
    :  # only print the last results
elif ! mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "$glob" > "$log" 2>&1
then
    tail -n 40 "$log" | tr '\r' '\n' | tail -n 40 >&2
    echo "mutmut failed, see $log" >&2
    exit 1
fi
mutmut results --all true | python -c '
import fnmatch, sys
from collections import Counter
glob = sys.argv[1]
status = dict(line.strip().rsplit(": ", 1) for line in sys.stdin
              if ": " in line)
mine = {k: v for k, v in status.items() if fnmatch.fnmatch(k, glob)}
count = Counter(mine.values())
for name, state in sorted(mine.items()):
    if state not in ("killed", "timeout"):
        print(f"{state:>10}  {name}")
timeout, survived = count["timeout"], count["survived"]
untested = count["no tests"]
killed = count["killed"] + timeout
score = 100 * killed / max(len(mine), 1)
print(f"{glob}: {len(mine)} mutants, {killed} killed ({timeout} by "
      f"timeout), {survived} survived, {untested} not reached by a test; "
      f"score {score:.1f} %")
' "$glob"
