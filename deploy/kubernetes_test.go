package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty Go value of the type the API server would
// decode apiVersion/kind into; the manifests may use only these kinds.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	}
	return nil, false
}

// decodeStrict decodes one YAML document into its Go type, failing on a
// field the type does not have (a typo, a wrong nesting level).
func decodeStrict(doc []byte) (any, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return nil, fmt.Errorf("kind %s/%s is not one the manifests may use", tm.APIVersion, tm.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// manifests decodes every document of every deploy/kubernetes/*.yaml but
// the kustomization, by file.
func manifests(t *testing.T) map[string][]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][]any{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], obj)
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func TestStrictDecodeRejectsTypos(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n    - port: 1\n"
	if _, err := decodeStrict([]byte(good)); err != nil {
		t.Fatalf("valid Service: %v", err)
	}
	for name, doc := range map[string]string{
		"misspelt field":   strings.Replace(good, "ports:", "portz:", 1),
		"wrong level":      good + "  selectr: {}\n",
		"unknown kind":     strings.Replace(good, "kind: Service", "kind: Servic", 1),
		"monitor typo":     "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: x\nspec:\n  endpoints:\n    - prot: http\n",
		"wrong value type": strings.Replace(good, "port: 1", "port: [1]", 1),
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	all := manifests(t)
	var (
		sts      *appsv1.StatefulSet
		services []*corev1.Service
		policies []*networkingv1.NetworkPolicy
		ingress  *networkingv1.Ingress
		monitor  *monitoringv1.ServiceMonitor
		pdb      *policyv1.PodDisruptionBudget
		deploys  []*appsv1.Deployment
	)
	for file, objs := range all {
		for _, o := range objs {
			switch v := o.(type) {
			case *appsv1.StatefulSet:
				sts = v
			case *appsv1.Deployment:
				deploys = append(deploys, v)
			case *corev1.Service:
				services = append(services, v)
			case *networkingv1.NetworkPolicy:
				policies = append(policies, v)
			case *networkingv1.Ingress:
				ingress = v
			case *monitoringv1.ServiceMonitor:
				monitor = v
			case *policyv1.PodDisruptionBudget:
				pdb = v
			}
			_ = file
		}
	}
	if sts == nil || ingress == nil || monitor == nil || pdb == nil || len(policies) < 3 || len(deploys) == 0 {
		t.Fatalf("missing manifests: statefulset %v ingress %v servicemonitor %v pdb %v policies %d node deployments %d",
			sts != nil, ingress != nil, monitor != nil, pdb != nil, len(policies), len(deploys))
	}
	podLabels := sts.Spec.Template.Labels
	containerPorts := map[string]corev1.ContainerPort{}
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			containerPorts[p.Name] = p
		}
	}
	selects := func(sel map[string]string, labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}

	// The PDB keeps a quorum: at most one of the 3 members down.
	if !selects(pdb.Spec.Selector.MatchLabels, podLabels) || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB does not hold a 3-member quorum: %+v", pdb.Spec)
	}
	// Every coordinator Service reaches a named container port with the
	// right protocol; the QUIC Services are UDP, one per member.
	quic := map[string]bool{}
	for _, s := range services {
		sel := map[string]string{}
		for k, v := range s.Spec.Selector {
			sel[k] = v
		}
		if pod := sel["statefulset.kubernetes.io/pod-name"]; pod != "" {
			quic[pod] = true
			delete(sel, "statefulset.kubernetes.io/pod-name")
			if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
				t.Errorf("service %s: type %s, want LoadBalancer", s.Name, s.Spec.Type)
			}
		} else if !selects(sel, podLabels) {
			continue
		}
		for _, p := range s.Spec.Ports {
			name := p.Name
			if p.TargetPort.Type == intstr.String {
				name = p.TargetPort.StrVal
			}
			cp, ok := containerPorts[name]
			if !ok || cp.Protocol != p.Protocol {
				t.Errorf("service %s port %s: no container port %q with protocol %s", s.Name, p.Name, name, p.Protocol)
			}
		}
	}
	for i := range int(*sts.Spec.Replicas) {
		if !quic[fmt.Sprintf("%s-%d", sts.Name, i)] {
			t.Errorf("no QUIC Service for member %s-%d", sts.Name, i)
		}
	}
	// The ServiceMonitor scrapes exactly one Service (the members') on a
	// port that Service has.
	scraped := 0
	for _, s := range services {
		if selects(monitor.Spec.Selector.MatchLabels, s.Labels) {
			scraped++
			for _, ep := range monitor.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("ServiceMonitor endpoint port %q is not a port of %s", ep.Port, s.Name)
				}
			}
		}
	}
	if scraped != 1 {
		t.Errorf("ServiceMonitor selects %d Services, want 1 (each member scraped once)", scraped)
	}
	// The Ingress serves HTTPS to the API Service.
	if len(ingress.Spec.TLS) == 0 || ingress.Annotations["cert-manager.io/cluster-issuer"] == "" {
		t.Error("Ingress has no TLS or no cert-manager annotation")
	}
	for _, r := range ingress.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			if !slices.ContainsFunc(services, func(s *corev1.Service) bool { return s.Name == p.Backend.Service.Name }) {
				t.Errorf("Ingress backend %s is not a Service of the manifests", p.Backend.Service.Name)
			}
		}
	}
	// Raft is reachable only from coordinator pods, under a default deny.
	var deny, coord *networkingv1.NetworkPolicy
	for _, p := range policies {
		switch {
		case len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0:
			deny = p
		case selects(p.Spec.PodSelector.MatchLabels, podLabels):
			coord = p
		}
	}
	if deny == nil || len(deny.Spec.PolicyTypes) != 2 {
		t.Fatal("no default-deny NetworkPolicy for ingress and egress")
	}
	if coord == nil {
		t.Fatal("no NetworkPolicy for the coordinators")
	}
	for _, rule := range coord.Spec.Ingress {
		for _, port := range rule.Ports {
			if port.Port == nil || port.Port.String() != "raft" {
				continue
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil || !selects(peer.PodSelector.MatchLabels, podLabels) {
					t.Errorf("Raft admitted from %+v, want coordinator pods only", peer)
				}
			}
		}
	}
	// No autoscaler: a Raft cluster's membership is not a replica count.
	for file := range all {
		data, _ := os.ReadFile(filepath.Join("kubernetes", file))
		if strings.Contains(string(data), "kind: HorizontalPodAutoscaler") {
			t.Errorf("%s has a HorizontalPodAutoscaler", file)
		}
	}
}

// TestKustomizationRenders renders deploy/kubernetes with kustomize's Go
// API (what kubectl apply -k runs) and decodes every rendered resource
// strictly: every listed file exists, and every resource lands in the mfn
// namespace.
func TestKustomizationRenders(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	abs, err := filepath.Abs("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for file, objs := range manifests(t) {
		if file != "secrets.example.yaml" {
			want += len(objs)
		}
	}
	if resMap.Size() != want {
		t.Errorf("kustomize rendered %d resources, the listed files hold %d", resMap.Size(), want)
	}
	kinds := map[string]int{}
	for _, r := range resMap.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeStrict(y); err != nil {
			t.Errorf("rendered %s: %v", r.CurId(), err)
		}
		kinds[r.GetKind()]++
		if r.GetKind() != "Namespace" && r.GetNamespace() != "mfn" {
			t.Errorf("%s is in namespace %q, want mfn", r.CurId(), r.GetNamespace())
		}
	}
	for _, kind := range []string{"StatefulSet", "NetworkPolicy", "Ingress", "ServiceMonitor", "PodDisruptionBudget"} {
		if kinds[kind] == 0 {
			t.Errorf("rendered kustomization has no %s", kind)
		}
	}
}
