package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var object = map[string]interface{}{
	"apiVersion": "runnet.dev/v1alpha1",
	"kind":       "EgressGateway",
	"metadata":   map[string]interface{}{"name": "fixed-ip", "generation": int64(2)},
	"spec": map[string]interface{}{
		"nat": map[string]interface{}{"addresses": []interface{}{"a", "b"}, "minPortsPerVm": float64(64)},
	},
	"status": map[string]interface{}{"observedGeneration": float64(2), "retained": false},
}

func healthy(message string) string {
	return "return {status = \"Healthy\", message = " + message + "}"
}

// A script written for Argo CD's built-in scripts (all libraries open) fails as a user's script.
func TestStringLibraryIsAbsent(t *testing.T) {
	for name, expr := range map[string]string{
		"string.find":  `tostring(string.find(obj.metadata.name, "ip"))`,
		"method :find": `tostring(obj.metadata.name:find("ip"))`,
		"method :sub":  `obj.metadata.name:sub(1, 5)`,
		"string.len":   `tostring(string.len("x"))`,
		"math.floor":   `tostring(math.floor(1.5))`,
	} {
		t.Run(name, func(t *testing.T) {
			script := healthy(expr)
			if _, err := Evaluate(script, object, true); err != nil {
				t.Fatalf("the script itself is broken (it fails with all libraries open too): %v", err)
			}
			h, err := Evaluate(script, object, false)
			if err == nil {
				t.Fatalf("%s worked in the sandbox (returned %+v): string/math are open", name, h)
			}
			if !strings.Contains(err.Error(), "attempt to") {
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}
}

func TestSandboxGlobals(t *testing.T) {
	script := `
local absent = {"string", "math", "io", "debug", "coroutine", "channel"}
for _, name in ipairs(absent) do
  if _G[name] ~= nil then return {status = "Degraded", message = name .. " is open"} end
end
local unsafe = {"execute", "exit", "getenv", "remove", "rename", "setenv", "tmpname", "setlocale"}
for _, name in ipairs(unsafe) do
  if os[name] ~= nil or require("os")[name] ~= nil then return {status = "Degraded", message = "os." .. name .. " is open"} end
end
local t = os.time()
local d = os.date("!%Y")
local c = os.clock()
local n = table.getn or #{}
table.insert(absent, "x")
return {status = "Healthy", message = tostring(t > 0) .. " " .. type(d) .. " " .. type(c) .. " " .. tostring(#absent)}`
	h, err := Evaluate(script, object, false)
	if err != nil {
		t.Fatal(err)
	}
	if h != (Health{"Healthy", "true string number 7"}) {
		t.Fatalf("got %+v", h)
	}
}

func TestObjectConversion(t *testing.T) {
	script := `
local a = obj.spec.nat.addresses
assert(#a == 2 and a[1] == "a" and a[2] == "b" and a[0] == nil, "lists are 1-based arrays")
assert(obj.metadata.generation + 1 == 3, "int64 is a number")
assert(obj.spec.nat.minPortsPerVm * 2 == 128, "float64 is a number")
assert(obj.status.observedGeneration == obj.metadata.generation, "int64 and float64 compare equal")
assert(obj.status.retained == false, "bools stay bools")
assert(obj.metadata.missing == nil, "absent fields are nil")
return {status = "Healthy", message = obj.metadata.name .. " " .. obj.metadata.generation}`
	h, err := Evaluate(script, object, false)
	if err != nil {
		t.Fatal(err)
	}
	if h != (Health{"Healthy", "fixed-ip 2"}) {
		t.Fatalf("got %+v", h)
	}
}

func TestTimeout(t *testing.T) {
	start := time.Now()
	_, err := Evaluate("while true do end", object, false)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("took %s", elapsed)
	}
}

func TestReturnValue(t *testing.T) {
	h, err := Evaluate(`return {status = "Fine", message = "x"}`, object, false)
	if err != nil || h != (Health{"Unknown", invalidHealthStatus}) {
		t.Fatalf("an unknown status reads as Unknown, as in Argo CD; got %+v, %v", h, err)
	}
	if _, err := Evaluate(`return "Healthy"`, object, false); err == nil {
		t.Fatal("a script that returns no table must fail")
	}
	if _, err := Evaluate(`local x = 1`, object, false); err == nil {
		t.Fatal("a script that returns nothing must fail")
	}
	if _, err := Evaluate(`return {status = "Healthy", message = 3}`, object, false); err == nil {
		t.Fatal("a message that is no string must fail")
	}
	h, err = Evaluate(`return {status = "Progressing"}`, object, false)
	if err != nil || h != (Health{"Progressing", ""}) {
		t.Fatalf("got %+v, %v", h, err)
	}
}

const repoChecks = "../../deploy/argocd"

func TestRepositoryHealthChecks(t *testing.T) {
	var out bytes.Buffer
	sum, err := RunTables(repoChecks, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 || sum.Kinds != 4 || sum.Tests < 40 {
		t.Fatalf("%+v\n%s", sum, out.String())
	}
}

// copyTree copies the repository's checks so that a test can break them.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(repoChecks, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoChecks, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestMismatchesAreReported(t *testing.T) {
	dir := copyTree(t)
	script := filepath.Join(dir, "runnet.dev", "PSCEndpoint", "health.lua")
	data, _ := os.ReadFile(script)
	broken := strings.Replace(string(data), `ConnectionRejected = true,`, ``, 1)
	if broken == string(data) {
		t.Fatal("the script no longer lists ConnectionRejected")
	}
	// Without Stalled and without ConnectionRejected among the stall reasons, a rejected connection
	// reads as Progressing (the other stall reasons still read as Degraded from Ready alone).
	broken = strings.Replace(broken, `local stalled = findCondition(conditions, "Stalled")`, `local stalled = nil`, 1)
	if err := os.WriteFile(script, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := run([]string{"test", dir}, &out, &out)
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{
		"FAIL runnet.dev/PSCEndpoint/testdata/connection-rejected.yaml: got {Progressing",
		"FAIL: 1 of ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

func TestWrongKindIsReported(t *testing.T) {
	dir := copyTree(t)
	src := filepath.Join(dir, "runnet.dev", "PSCExport", "testdata", "healthy.yaml")
	dst := filepath.Join(dir, "runnet.dev", "PSCEndpoint", "testdata", "healthy.yaml")
	data, _ := os.ReadFile(src)
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"test", dir}, &out, &out); code != 1 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "is a runnet.dev/v1alpha1 PSCExport, not a runnet.dev/PSCEndpoint") {
		t.Fatal(out.String())
	}
}

func TestEval(t *testing.T) {
	var out, errs bytes.Buffer
	code := run([]string{"eval", repoChecks + "/runnet.dev/PSCEndpoint/health.lua",
		repoChecks + "/runnet.dev/PSCEndpoint/testdata/connection-pending.yaml"}, &out, &errs)
	if code != 0 || !strings.HasPrefix(out.String(), `{"status":"Progressing","message":"the connection to `) {
		t.Fatalf("exit %d: %s %s", code, out.String(), errs.String())
	}
	out.Reset()
	bad := filepath.Join(t.TempDir(), "bad.lua")
	_ = os.WriteFile(bad, []byte(`return {status = string.upper("healthy")}`), 0o644)
	code = run([]string{"eval", bad, repoChecks + "/runnet.dev/PSCEndpoint/testdata/healthy.yaml"}, &out, &errs)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("a failing script must exit 1 and print nothing: exit %d, %q", code, out.String())
	}
}
