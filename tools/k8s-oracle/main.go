// Command k8s-oracle answers with Kubernetes' own code, for differential tests of the project's policies:
// Pod Security Standards verdicts (k8s.io/pod-security-admission) and image reference parsing
// (github.com/distribution/reference, what containerd and the kubelet use).
//
// Both checks read JSON Lines on stdin and write exactly one JSON line per input line, in order, so a
// test can send thousands of cases to one process.
//
//	k8s-oracle podsecurity [--version latest|v1.NN]   each line a Pod (camelCase JSON)
//	k8s-oracle imageref                               each line a JSON string
//	k8s-oracle version                                pinned module versions, what "latest" means
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	kjson "sigs.k8s.io/json"
)

const usage = `usage: k8s-oracle podsecurity [--version latest|v1.NN] | imageref | version`

func main() {
	if len(os.Args) < 2 {
		fail(usage)
	}
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "podsecurity":
		version := api.LatestVersion()
		if len(args) == 2 && args[0] == "--version" {
			v, err := api.ParseVersion(args[1])
			if err != nil {
				fail("--version " + args[1] + ": " + err.Error())
			}
			version = v
		} else if len(args) != 0 {
			fail(usage)
		}
		evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
		if err != nil {
			fail(err.Error())
		}
		run(func(line []byte) any { return podSecurity(evaluator, version, line) })
	case "imageref":
		if len(args) != 0 {
			fail(usage)
		}
		run(imageRef)
	case "version":
		printVersion()
	default:
		fail(usage)
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "k8s-oracle:", message)
	os.Exit(2)
}

// run answers each input line with one output line; an empty line still gets its (error) answer so
// that output line N always belongs to input line N.
func run(answer func([]byte) any) {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if encErr := enc.Encode(answer(bytes.TrimRight(line, "\r\n"))); encErr != nil {
				fail(encErr.Error())
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(err.Error())
		}
	}
	if err := out.Flush(); err != nil {
		fail(err.Error())
	}
}

type errorAnswer struct {
	Error string `json:"error"`
}

type forbidden struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

type levelAnswer struct {
	Allowed   bool        `json:"allowed"`
	Forbidden []forbidden `json:"forbidden"`
}

type podAnswer struct {
	Baseline   levelAnswer `json:"baseline"`
	Restricted levelAnswer `json:"restricted"`
	// Warnings lists what the API server would warn about and drop (unknown or duplicate fields).
	Warnings []string `json:"warnings,omitempty"`
}

// podSecurity decodes like the API server (case-sensitive keys; unknown fields dropped with a warning,
// not rejected) and evaluates both levels. Defaulting is not applied: the PodSecurity checks do not
// depend on defaulted fields, except host ports implied by hostNetwork, which fails baseline anyway.
func podSecurity(evaluator policy.Evaluator, version api.Version, line []byte) any {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errorAnswer{"decode: a Pod must be a JSON object"}
	}
	var pod corev1.Pod
	strictErrs, err := kjson.UnmarshalStrict(trimmed, &pod)
	if err != nil {
		return errorAnswer{"decode: " + err.Error()}
	}
	if (pod.Kind != "" && pod.Kind != "Pod") || (pod.APIVersion != "" && pod.APIVersion != "v1") {
		return errorAnswer{fmt.Sprintf("decode: expected apiVersion v1, kind Pod, got %q, %q", pod.APIVersion, pod.Kind)}
	}
	answer := podAnswer{
		Baseline:   evaluate(evaluator, api.LevelBaseline, version, &pod),
		Restricted: evaluate(evaluator, api.LevelRestricted, version, &pod),
	}
	for _, e := range strictErrs {
		answer.Warnings = append(answer.Warnings, e.Error())
	}
	return answer
}

func evaluate(evaluator policy.Evaluator, level api.Level, version api.Version, pod *corev1.Pod) levelAnswer {
	results := evaluator.EvaluatePod(api.LevelVersion{Level: level, Version: version}, &pod.ObjectMeta, &pod.Spec)
	agg := policy.AggregateCheckResults(results)
	answer := levelAnswer{Allowed: agg.Allowed, Forbidden: []forbidden{}}
	for i, reason := range agg.ForbiddenReasons {
		answer.Forbidden = append(answer.Forbidden, forbidden{reason, agg.ForbiddenDetails[i]})
	}
	return answer
}

type imageAnswer struct {
	Valid      bool    `json:"valid"`
	Error      string  `json:"error,omitempty"`
	Domain     string  `json:"domain,omitempty"`
	Path       string  `json:"path,omitempty"`
	Tag        *string `json:"tag"`
	Digest     *string `json:"digest"`
	Normalized string  `json:"normalized,omitempty"`
	Familiar   string  `json:"familiar,omitempty"`
	// WithDefaultTag is what the kubelet pulls: ":latest" added when there is neither tag nor digest.
	WithDefaultTag string `json:"withDefaultTag,omitempty"`
}

func imageRef(line []byte) any {
	var ref string
	if err := json.Unmarshal(line, &ref); err != nil {
		return errorAnswer{"decode: each line must be a JSON string: " + err.Error()}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return map[string]any{"valid": false, "error": err.Error()}
	}
	answer := imageAnswer{
		Valid:          true,
		Domain:         reference.Domain(named),
		Path:           reference.Path(named),
		Normalized:     named.String(),
		Familiar:       reference.FamiliarString(named),
		WithDefaultTag: reference.TagNameOnly(named).String(),
	}
	if tagged, ok := named.(reference.Tagged); ok {
		tag := tagged.Tag()
		answer.Tag = &tag
	}
	if digested, ok := named.(reference.Digested); ok {
		digest := digested.Digest().String()
		answer.Digest = &digest
	}
	return answer
}

// printVersion names the pinned modules (from the build information) and the newest policy version
// the checks define: "latest" evaluates exactly as that version.
func printVersion() {
	modules := map[string]string{}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			modules[dep.Path] = dep.Version
		}
		modules["go"] = info.GoVersion
	}
	newest := api.Version{}
	for _, check := range policy.DefaultChecks() {
		if v := check.Versions[len(check.Versions)-1].MinimumVersion; newest.Older(v) {
			newest = v
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{
		"latest":                            api.LatestVersion().String(),
		"latestEvaluatesAs":                 newest.String(),
		"k8s.io/pod-security-admission":     modules["k8s.io/pod-security-admission"],
		"k8s.io/api":                        modules["k8s.io/api"],
		"k8s.io/apimachinery":               modules["k8s.io/apimachinery"],
		"github.com/distribution/reference": modules["github.com/distribution/reference"],
		"go":                                modules["go"],
	}); err != nil {
		fail(err.Error())
	}
}
