#!/usr/bin/env bash
# One step of `make test`, recorded in the summary file $CI_SUMMARY:
#   scripts/ci-step.sh NAME COMMAND...   runs COMMAND; records "pass" (with its time) or
#                                        "FAILED" (and exits with COMMAND's status). A step that
#                                        skips writes its own "skipped" line (with the reason)
#                                        into $CI_SUMMARY, and then no "pass" is added.
#   scripts/ci-step.sh --report STATUS   prints the summary and a last line saying whether
#                                        make test passed (STATUS: make's exit status).
# Without $CI_SUMMARY it only runs COMMAND.
set -uo pipefail
summary="${CI_SUMMARY:-}"

if [[ "${1:-}" == "--report" ]]; then
  status="${2:-1}"
  echo
  echo "== make test summary"
  [[ -n "$summary" && -s "$summary" ]] && cat "$summary"
  passed=0 skipped=0 failed=0
  if [[ -n "$summary" && -f "$summary" ]]; then
    passed=$(grep -c '^pass ' "$summary")
    skipped=$(grep -c '^skipped ' "$summary")
    failed=$(grep -c '^FAILED ' "$summary")
  fi
  if [[ "$status" == 0 && "$failed" == 0 ]]; then
    if [[ "$skipped" == 0 ]]; then
      echo "make test: PASSED ($passed steps passed, none skipped)"
    else
      echo "make test: PASSED with $skipped step(s) SKIPPED, see above ($passed steps passed)"
    fi
  else
    echo "make test: FAILED (exit $status; $passed steps passed, $failed failed, $skipped skipped; the failing step's output is above)"
  fi
  exit 0
fi

name="$1"
shift
if [[ -z "$summary" ]]; then exec "$@"; fi
mkdir -p "$(dirname "$summary")" && touch "$summary"
echo "== $name"
lines_before=$(wc -l <"$summary")
started=$SECONDS
"$@"
status=$?
took=$((SECONDS - started))
if [[ "$status" != 0 ]]; then
  printf '%-8s %s (exit %s after %ss)\n' "FAILED" "$name" "$status" "$took" >>"$summary"
  exit "$status"
fi
lines_after=$(wc -l <"$summary")
if [[ "$lines_after" == "$lines_before" ]]; then
  printf '%-8s %s (%ss)\n' "pass" "$name" "$took" >>"$summary"
fi
