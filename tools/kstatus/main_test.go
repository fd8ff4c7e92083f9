package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const stream = `---
# a comment-only document and empty ones are skipped
---
apiVersion: runnet.dev/v1alpha1
kind: EgressGateway
metadata: {name: a, namespace: default, generation: 2}
status: {observedGeneration: 1}
---
apiVersion: runnet.dev/v1alpha1
kind: PSCExportList
items:
- metadata: {name: b, namespace: x, generation: 1}
  status:
    observedGeneration: 1
    conditions: [{type: Ready, status: "True", reason: Reconciled, message: ok}]
- apiVersion: runnet.dev/v1alpha1
  kind: PSCExport
  metadata: {name: c, namespace: x, generation: 1, deletionTimestamp: "2026-11-02T10:02:55Z"}
---
{"apiVersion": "runnet.dev/v1alpha1", "kind": "PSCEndpoint", "metadata": {"name": "d", "generation": 4},
 "status": {"observedGeneration": 4, "conditions": [
   {"type": "Ready", "status": "False", "reason": "ConnectionRejected", "message": "rejected"},
   {"type": "Stalled", "status": "True", "reason": "ConnectionRejected", "message": "rejected"}]}}
---
`

func lines(t *testing.T, out string) []Line {
	t.Helper()
	var got []Line
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var line Line
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, line)
	}
	return got
}

func TestStream(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(nil, strings.NewReader(stream), &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	want := []Line{
		{"EgressGateway", "default", "a", "InProgress", "EgressGateway generation is 2, but latest observed generation is 1"},
		{"PSCExport", "x", "b", "Current", "Resource is Ready"},
		{"PSCExport", "x", "c", "Terminating", "Resource scheduled for deletion"},
		{"PSCEndpoint", "", "d", "Failed", "rejected"},
	}
	got := lines(t, out.String())
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// The generation check needs integers: JSON numbers decoded as float64 would make kstatus fail.
func TestGenerationsAreIntegers(t *testing.T) {
	objs, err := Decode(strings.NewReader(`{"kind": "X", "metadata": {"name": "n", "generation": 3}, "status": {"observedGeneration": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	if line := Compute(objs[0]); line.Status != "Current" {
		t.Fatalf("got %+v", line)
	}
}

func TestFilesAndErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(good, []byte("kind: X\nmetadata: {name: n}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("kind: [X\n"), 0o644)
	var out, errs bytes.Buffer
	if code := run([]string{good, good}, nil, &out, &errs); code != 0 || len(lines(t, out.String())) != 2 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errs.String())
	}
	for _, args := range [][]string{{bad}, {filepath.Join(dir, "missing.yaml")}} {
		errs.Reset()
		if code := run(args, nil, &out, &errs); code != 1 || errs.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs.String())
		}
	}
}
