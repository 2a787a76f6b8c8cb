// Package deploy_test holds the tests of the deployment files in deploy/:
// the Docker Compose federation (compose_test.go, needs Docker; run by
// .ci/run with MFN_DOCKER_TEST=1) and the Kubernetes manifests
// (kubernetes_test.go). The folder has no Go code of its own.
package deploy_test
