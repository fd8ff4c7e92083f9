package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// HealthTests is Argo CD's health_test.yaml.
type HealthTests struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

// Summary counts what RunTables checked.
type Summary struct {
	Kinds, Tests, Failed int
}

// LoadObject reads one Kubernetes object (YAML or JSON) as Argo CD's own tests do.
func LoadObject(path string) (map[string]interface{}, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]interface{}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: no object", path)
	}
	return obj, nil
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// RunTables runs every <group>/<Kind>/health_test.yaml under root, as Argo CD's TestLuaHealthScript
// does for resource_customizations, but in the sandbox users' scripts get (and once more with all
// libraries open, as upstream runs built-in scripts: both must agree). It writes one line per test.
func RunTables(root string, out io.Writer) (Summary, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (d.Name() == "health.lua" || d.Name() == "health_test.yaml") {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	sort.Strings(dirs)
	var sum Summary
	seen := map[string]bool{}
	for _, dir := range dirs {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		parts := strings.Split(rel, "/")
		if len(parts) != 2 {
			return sum, fmt.Errorf("%s: health checks live in <group>/<Kind>/", rel)
		}
		group, kind := parts[0], parts[1]
		script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
		if err != nil {
			return sum, fmt.Errorf("%s: %w", rel, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return sum, fmt.Errorf("%s: %w", rel, err)
		}
		var tests HealthTests
		if err := yaml.UnmarshalStrict(data, &tests); err != nil {
			return sum, fmt.Errorf("%s/health_test.yaml: %w", rel, err)
		}
		if len(tests.Tests) == 0 {
			return sum, fmt.Errorf("%s/health_test.yaml: no tests", rel)
		}
		sum.Kinds++
		for _, tc := range tests.Tests {
			sum.Tests++
			name := rel + "/" + tc.InputPath
			problem := runOne(string(script), filepath.Join(dir, tc.InputPath), group, kind, tc.HealthStatus)
			if problem != "" {
				sum.Failed++
				fmt.Fprintf(out, "FAIL %s: %s\n", name, problem)
			} else {
				fmt.Fprintf(out, "ok   %s: %s %q\n", name, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
		}
	}
	return sum, nil
}

func runOne(script, input, group, kind string, want Health) string {
	obj, err := LoadObject(input)
	if err != nil {
		return err.Error()
	}
	apiVersion, _ := obj["apiVersion"].(string)
	objKind, _ := obj["kind"].(string)
	if !strings.HasPrefix(apiVersion, group+"/") || objKind != kind {
		return fmt.Sprintf("the object is a %s %s, not a %s/%s", apiVersion, objKind, group, kind)
	}
	got, err := Evaluate(script, obj, false)
	if err != nil {
		return "script failed: " + err.Error()
	}
	if got != want {
		return fmt.Sprintf("got {%s %q}, want {%s %q}", got.Status, got.Message, want.Status, want.Message)
	}
	open, err := Evaluate(script, obj, true)
	if err != nil {
		return "script failed with all libraries open: " + err.Error()
	}
	if open != got {
		return fmt.Sprintf("with all libraries open got {%s %q}, sandboxed {%s %q}", open.Status, open.Message, got.Status, got.Message)
	}
	return ""
}
