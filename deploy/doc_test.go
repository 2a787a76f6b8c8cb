// Package deploy_test holds the tests of the Kubernetes manifests in
// deploy/kubernetes (kubernetes_test.go); the Docker Compose test is in
// deploy/compose. The folder has no Go code of its own.
package deploy_test
