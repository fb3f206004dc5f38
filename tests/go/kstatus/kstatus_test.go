// Package kstatus judges ModelRelease and EdgeGateway objects with kstatus, the library Flux,
// kpt and cli-utils use to decide whether a resource is Current, InProgress or Failed.
//
// Each case is one JSON file: {"name": "...", "expect": "Current|InProgress|Failed",
// "object": {the whole object as the API server returned it}}. The cases are read from the
// folder named by $KSTATUS_CASES (the operator integration test writes the objects the real
// operator wrote during a rollout, an abort, a rejection and a rollback, at every phase), or
// from testdata/ (a copy of such a run) when the variable is unset.
package kstatus

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdictCase struct {
	Name   string          `json:"name"`
	Expect string          `json:"expect"`
	Reason string          `json:"reason,omitempty"`
	Object json.RawMessage `json:"object"`
}

func casesDir() string {
	if dir := os.Getenv("KSTATUS_CASES"); dir != "" {
		return dir
	}
	return "testdata"
}

func loadCases(t *testing.T) []verdictCase {
	t.Helper()
	dir := casesDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.json case in %s", dir)
	}
	sort.Strings(files)
	out := make([]verdictCase, 0, len(files))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		var c verdictCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: not a case: %v", file, err)
		}
		if c.Name == "" {
			c.Name = filepath.Base(file)
		}
		status.FromStringOrDie(c.Expect) // an unknown verdict is a broken case, not a pass
		out = append(out, c)
	}
	return out
}

// TestComputeJudgesEveryPhaseAsAUserExpects runs kstatus.Compute on every case.
func TestComputeJudgesEveryPhaseAsAUserExpects(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			// UnmarshalJSON keeps integers as int64, as the API machinery does (kstatus
			// reads metadata.generation and status.observedGeneration with NestedInt64).
			if err := u.UnmarshalJSON(c.Object); err != nil {
				t.Fatalf("object: %v", err)
			}
			res, err := status.Compute(u)
			if err != nil {
				t.Fatalf("kstatus.Compute: %v", err)
			}
			if string(res.Status) != c.Expect {
				t.Fatalf("%s %s: kstatus says %s (%q), expected %s",
					u.GetKind(), u.GetName(), res.Status, res.Message, c.Expect)
			}
			if c.Reason != "" {
				found := false
				for _, cond := range res.Conditions {
					if cond.Reason == c.Reason {
						found = true
					}
				}
				if !found {
					t.Fatalf("%s %s: kstatus conditions %+v lack reason %s",
						u.GetKind(), u.GetName(), res.Conditions, c.Reason)
				}
			}
			t.Logf("%s %s: %s: %s", u.GetKind(), u.GetName(), res.Status, res.Message)
		})
	}
}
