// Command gatekeeper-bench times Gatekeeper's own mutation engine (the pkg/mutation System of the
// version go.mod pins, built from the Go module proxy) on the benchmark's worker pods, with the seven
// Assign mutators that do what the project's default library adds to that pod: the restricted Pod
// Security fields, only where absent, and automountServiceAccountToken=false always (see hardening()).
//
//	gatekeeper-bench --pods DIR [--sizes 1,5,50] [--iterations N] [--warmup N] [--mutated DIR] [--path-tests=false]
//
// DIR holds pod-<containers>.json (a Pod as the hook sends it to OPA: bench/gatekeeper_eval.py writes
// them). Each timed call is System.Mutate on a fresh deep copy of the pod, made outside the timed part
// (Gatekeeper's BenchmarkSystem_Mutate builds its object inside the loop, but an empty one: here the copy
// of a 50-container pod would weigh on the figure, and no admission request pays for it). Prints JSON:
// per size the median and p90 ns of one Mutate call; --mutated writes each mutated pod as
// mutated-<containers>.json, for the caller to check against the library's decision (the same work).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/gatekeeper/v3/apis/mutations/unversioned"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/match"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/mutators"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/path/tester"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const module = "github.com/open-policy-agent/gatekeeper/v3"

// assignment is one Assign mutator: a location, the value, and whether it is only set where absent.
type assignment struct {
	name, location string
	value          interface{}
	onlyIfAbsent   bool
}

// hardening mirrors the default library on the worker pod (policies pod_security_context, security_context,
// service_account_token): the fields where absent, the token turned off whatever the pod says. The
// library adds no label or annotation to this pod, so no AssignMetadata is needed.
func hardening() []assignment {
	container := "spec.containers[name:*].securityContext."
	return []assignment{
		{"pod-run-as-non-root", "spec.securityContext.runAsNonRoot", true, true},
		{"pod-seccomp-profile", "spec.securityContext.seccompProfile.type", "RuntimeDefault", true},
		{"container-allow-privilege-escalation", container + "allowPrivilegeEscalation", false, true},
		{"container-run-as-non-root", container + "runAsNonRoot", true, true},
		{"container-seccomp-profile", container + "seccompProfile.type", "RuntimeDefault", true},
		{"container-drop-capabilities", container + "capabilities.drop", []interface{}{"ALL"}, true},
		{"automount-service-account-token", "spec.automountServiceAccountToken", false, false},
	}
}

// newSystem builds the System with the mutators as Assign objects, as the controller would from the CRDs.
// With pathTests false no mutator tests for absence (each overwrites, as a bare Assign does): a second
// pass then re-applies them all and convergence needs cmp.Equal over the whole pod. Not the library's
// semantics; a variant for comparison with figures measured that way.
func newSystem(pathTests bool) (*mutation.System, error) {
	system := mutation.NewSystem(mutation.SystemOpts{})
	for _, m := range hardening() {
		assign := &unversioned.Assign{
			ObjectMeta: metav1.ObjectMeta{Name: m.name},
			Spec: unversioned.AssignSpec{
				ApplyTo: []match.MutationApplyTo{{ApplyTo: match.ApplyTo{
					Groups: []string{""}, Versions: []string{"v1"}, Kinds: []string{"Pod"},
				}}},
				Match: match.Match{
					Scope: apiextensionsv1.NamespaceScoped,
					Kinds: []match.Kinds{{APIGroups: []string{""}, Kinds: []string{"Pod"}}},
				},
				Location:   m.location,
				Parameters: unversioned.Parameters{Assign: unversioned.AssignField{Value: &types.Anything{Value: m.value}}},
			},
		}
		if m.onlyIfAbsent && pathTests {
			assign.Spec.Parameters.PathTests = []unversioned.PathTest{{SubPath: m.location, Condition: tester.MustNotExist}}
		}
		mutator, err := mutators.MutatorForAssign(assign)
		if err != nil {
			return nil, fmt.Errorf("mutator %s: %w", m.name, err)
		}
		if err := system.Upsert(mutator); err != nil {
			return nil, fmt.Errorf("upsert %s: %w", m.name, err)
		}
	}
	return system, nil
}

// row is one size's figures.
type row struct {
	Containers int   `json:"containers"`
	Iterations int   `json:"iterations"`
	Warmup     int   `json:"warmup"`
	MedianNs   int64 `json:"median_ns"`
	P90Ns      int64 `json:"p90_ns"`
	MinNs      int64 `json:"min_ns"`
}

// mutate runs one admission-like Mutate on obj (in place), as the webhook calls it.
func mutate(system *mutation.System, obj *unstructured.Unstructured, ns *corev1.Namespace) (time.Duration, error) {
	mutable := &types.Mutable{Object: obj, Namespace: ns, Username: "system:serviceaccount:airflow:scheduler",
		Source: types.SourceTypeOriginal, Operation: admissionv1.Create}
	began := time.Now()
	mutated, err := system.Mutate(context.Background(), mutable)
	took := time.Since(began)
	if err == nil && !mutated {
		err = errors.New("Mutate changed nothing: the mutators did not match the pod")
	}
	return took, err
}

func measure(system *mutation.System, pod *unstructured.Unstructured, iterations, warmup int) (row, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pod.GetNamespace()}}
	samples := make([]int64, 0, iterations)
	for i := 0; i < warmup+iterations; i++ {
		obj := pod.DeepCopy()
		took, err := mutate(system, obj, ns)
		if err != nil {
			return row{}, err
		}
		if i >= warmup {
			samples = append(samples, took.Nanoseconds())
		}
	}
	slices.Sort(samples)
	// The same percentile rule as bench/opa_eval.py: the median of the samples, p90 by index.
	median := samples[len(samples)/2]
	if len(samples)%2 == 0 {
		median = (samples[len(samples)/2-1] + samples[len(samples)/2]) / 2
	}
	return row{Containers: 0, Iterations: iterations, Warmup: warmup, MedianNs: median,
		P90Ns: samples[int(0.9*float64(len(samples)-1))], MinNs: samples[0]}, nil
}

func gatekeeperVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == module {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func readPod(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func run() error {
	pods := flag.String("pods", "", "folder holding pod-<containers>.json")
	sizes := flag.String("sizes", "1,5,50", "container counts to measure, comma-separated")
	iterations := flag.Int("iterations", 1000, "timed Mutate calls per size")
	warmup := flag.Int("warmup", 100, "untimed Mutate calls before those")
	mutatedDir := flag.String("mutated", "", "write each mutated pod as mutated-<containers>.json here")
	pathTests := flag.Bool("path-tests", true, "set the fields only where absent (the library's semantics); "+
		"false: every mutator overwrites, a variant that is not the library's work")
	flag.Parse()
	if *pods == "" {
		return errors.New("--pods is required")
	}
	system, err := newSystem(*pathTests)
	if err != nil {
		return err
	}
	rows := []row{}
	for _, field := range strings.Split(*sizes, ",") {
		containers, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil {
			return fmt.Errorf("--sizes: %w", err)
		}
		pod, err := readPod(filepath.Join(*pods, fmt.Sprintf("pod-%d.json", containers)))
		if err != nil {
			return err
		}
		if *mutatedDir != "" {
			obj := pod.DeepCopy()
			if _, err := mutate(system, obj, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetNamespace()}}); err != nil {
				return err
			}
			data, err := obj.MarshalJSON()
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*mutatedDir, fmt.Sprintf("mutated-%d.json", containers)), data, 0o644); err != nil {
				return err
			}
		}
		n, w := *iterations, *warmup
		figures, err := measure(system, pod, n, w)
		if err != nil {
			return fmt.Errorf("%d containers: %w", containers, err)
		}
		figures.Containers = containers
		rows = append(rows, figures)
	}
	out := map[string]interface{}{
		"engine":             "gatekeeper pkg/mutation System",
		"gatekeeper_version": gatekeeperVersion(),
		"go_version":         runtime.Version(),
		"mutators":           len(hardening()),
		"path_tests":         *pathTests,
		"copy":               "deep copy of the pod made outside the timed Mutate call",
		"rows":               rows,
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(out)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatekeeper-bench:", err)
		os.Exit(1)
	}
}
