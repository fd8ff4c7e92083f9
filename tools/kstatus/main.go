// Command kstatus prints the kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) of Kubernetes
// objects, the computation Flux's health checks use.
//
// Usage: kstatus [FILE...]   (no FILE, or "-", reads stdin)
//
// Each input is YAML or JSON: one object, a List (kind ending in "List" with items), or a
// multi-document YAML stream. One JSON line per object goes to stdout:
//
//	{"kind":"EgressGateway","namespace":"default","name":"fixed-ip","status":"Current","message":"Resource is Ready"}
//
// status is one of InProgress, Current, Failed, Terminating, Unknown (Compute returned an error;
// message says which) or NotFound. The exit code is 0 unless an input cannot be read or parsed (1).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Line is one object's result, printed as one JSON line.
type Line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

// Decode reads every object in r: documents of a YAML or JSON stream, with Lists flattened.
func Decode(r io.Reader) ([]map[string]interface{}, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var out []map[string]interface{}
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		trimmed := strings.TrimSpace(string(raw))
		if trimmed == "" || trimmed == "null" {
			continue // an empty YAML document ("---" at the start or end)
		}
		// apimachinery's json turns whole numbers into int64, as kstatus expects for
		// metadata.generation and status.observedGeneration (float64 would be an error).
		var obj map[string]interface{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("not an object: %w", err)
		}
		out = append(out, flatten(obj)...)
	}
}

// flatten returns a List's items (filling in apiVersion/kind where the list leaves them out), or obj.
func flatten(obj map[string]interface{}) []map[string]interface{} {
	kind, _ := obj["kind"].(string)
	items, isList := obj["items"].([]interface{})
	if !isList || !strings.HasSuffix(kind, "List") {
		return []map[string]interface{}{obj}
	}
	var out []map[string]interface{}
	for _, it := range items {
		item, ok := it.(map[string]interface{})
		if !ok {
			continue
		}
		if _, ok := item["kind"]; !ok && kind != "List" {
			item["kind"] = strings.TrimSuffix(kind, "List")
		}
		if _, ok := item["apiVersion"]; !ok {
			if v, ok := obj["apiVersion"]; ok {
				item["apiVersion"] = v
			}
		}
		out = append(out, flatten(item)...)
	}
	return out
}

// Compute runs status.Compute on one object.
func Compute(obj map[string]interface{}) Line {
	u := &unstructured.Unstructured{Object: obj}
	line := Line{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	res, err := status.Compute(u)
	switch {
	case err != nil:
		line.Status, line.Message = string(status.UnknownStatus), err.Error()
	case res == nil:
		line.Status = string(status.UnknownStatus)
	default:
		line.Status, line.Message = string(res.Status), res.Message
	}
	return line
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"-"}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, path := range args {
		var r io.Reader = stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				fmt.Fprintf(stderr, "kstatus: %v\n", err)
				return 1
			}
			defer f.Close()
			r = f
		}
		objs, err := Decode(r)
		if err != nil {
			fmt.Fprintf(stderr, "kstatus: %s: %v\n", path, err)
			return 1
		}
		for _, obj := range objs {
			if err := enc.Encode(Compute(obj)); err != nil {
				fmt.Fprintf(stderr, "kstatus: %v\n", err)
				return 1
			}
		}
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
