// Command argo-health runs Argo CD resource health checks (health.lua) the way Argo CD runs a
// user's script from argocd-cm: gopher-lua with only the base, table, package and a safe os
// library (no string, no math), obj set to the object, a 1 s timeout.
//
//	argo-health test DIR              run every DIR/<group>/<Kind>/health_test.yaml (Argo CD's layout)
//	argo-health eval SCRIPT OBJECT    print {"status":..., "message":...} for one object ("-": stdin)
//
// test prints one line per case and a summary ("PASS: N tests in K kinds" or "FAIL: F of N ...");
// it exits 1 if any case fails. eval exits 1 if the script fails. Bad usage or input exits 2.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

const usage = `usage: argo-health test DIR
       argo-health eval SCRIPT OBJECT|-`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch {
	case args[0] == "test" && len(args) == 2:
		sum, err := RunTables(args[1], stdout)
		if err != nil {
			fmt.Fprintf(stderr, "argo-health: %v\n", err)
			return 2
		}
		if sum.Tests == 0 {
			fmt.Fprintf(stderr, "argo-health: no health_test.yaml under %s\n", args[1])
			return 2
		}
		if sum.Failed > 0 {
			fmt.Fprintf(stdout, "FAIL: %d of %d tests in %d kinds\n", sum.Failed, sum.Tests, sum.Kinds)
			return 1
		}
		fmt.Fprintf(stdout, "PASS: %d tests in %d kinds\n", sum.Tests, sum.Kinds)
		return 0
	case args[0] == "eval" && len(args) == 3:
		script, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "argo-health: %v\n", err)
			return 2
		}
		obj, err := LoadObject(args[2])
		if err != nil {
			fmt.Fprintf(stderr, "argo-health: %v\n", err)
			return 2
		}
		h, err := Evaluate(string(script), obj, false)
		if err != nil {
			fmt.Fprintf(stderr, "argo-health: %s: %v\n", args[1], err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(h)
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
