// The Pod sandbox ("pause") program of the one-node test environment
// (tests/harness/node.py); `tools/build.sh --node` builds it. No dependencies.
module secretsync.io/tools/pause

go 1.26.0
