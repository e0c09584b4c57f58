#!/bin/sh
# Run each C unit test binary; with VALGRIND=1 under valgrind (any error
# fails). Prints one closing line "N passed, N failed" over the binaries.
pass=0; fail=0
for t in "$@"; do
    if [ -n "${VALGRIND:-}" ]; then
        valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            "$t" || { fail=$((fail + 1)); echo "FAILED: $t (valgrind)"; continue; }
    else
        "$t" || { fail=$((fail + 1)); echo "FAILED: $t"; continue; }
    fi
    pass=$((pass + 1))
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
