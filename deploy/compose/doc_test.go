// Package compose_test is the test of deploy/compose.yaml: a Compose
// federation built from the kits of deploy/compose/project.toml, run under
// faults. It needs Docker and root and runs only with MFN_DOCKER_TEST=1
// (.ci/run sets it after scripts/image.sh).
package compose_test
