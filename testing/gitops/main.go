// Command gitops-check judges OneTimeShare objects as GitOps tools do: Argo CD's health and
// actions (the Lua customizations in deploy/argocd, run in Argo CD's Lua environment, see
// argocd.go), kstatus (sigs.k8s.io/cli-utils' status.Compute, what Flux's health checks use) and
// Flux's healthCheckExprs (github.com/fluxcd/pkg/runtime/cel, see flux.go).
//
//	gitops-check eval [--flux KUSTOMIZATION] CUSTOMIZATION_DIR OBJECT...
//	                                                one JSON line per object (JSON or YAML file);
//	                                                with --flux, also the verdict of that
//	                                                Kustomization's healthCheckExprs (flux.go)
//	gitops-check argocd-tests CUSTOMIZATION_DIR     runs health_test.yaml and action_test.yaml
//
// The operator's integration test tests/gitops_health.rs runs both on objects exported from a
// real control plane.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Verdict is what every tool says of one object.
type Verdict struct {
	File    string   `json:"file"`
	Health  *Health  `json:"health,omitempty"`
	Actions []Action `json:"actions,omitempty"`
	// The ots.dev/reshare value the reissue action sets.
	Reissue string `json:"reissue,omitempty"`
	// The ots.dev/burn value the burn action sets.
	Burn string `json:"burn,omitempty"`
	// Whether each action changed nothing but its own field.
	ActionsTouchOnlyTheirField bool     `json:"actionsTouchOnlyTheirField"`
	Kstatus                    *Kstatus `json:"kstatus,omitempty"`
	// Flux's healthCheckExprs verdict (eval --flux only).
	Flux   *Kstatus `json:"flux,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Kstatus is kstatus' verdict.
type Kstatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// ReadObject reads a JSON or YAML object; whole numbers become int64, as in unstructured
// objects read from the API.
func ReadObject(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data, err = yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	obj := map[string]interface{}{}
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// ComputeKstatus is kstatus' status of obj.
func ComputeKstatus(obj map[string]interface{}) (Kstatus, error) {
	result, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return Kstatus{}, err
	}
	return Kstatus{Status: string(result.Status), Message: result.Message}, nil
}

// without returns a deep copy of obj with one field (a path of keys) removed.
func without(obj map[string]interface{}, path ...string) map[string]interface{} {
	copied := runtimeDeepCopy(obj)
	unstructured.RemoveNestedField(copied, path...)
	return copied
}

func runtimeDeepCopy(obj map[string]interface{}) map[string]interface{} {
	data, _ := json.Marshal(obj)
	copied := map[string]interface{}{}
	_ = utiljson.Unmarshal(data, &copied)
	return copied
}

// Evaluate gives the verdicts on one object.
func Evaluate(c Customization, flux *FluxCheck, path string) Verdict {
	verdict := Verdict{File: path, ActionsTouchOnlyTheirField: true}
	fail := func(what string, err error) {
		verdict.Errors = append(verdict.Errors, fmt.Sprintf("%s: %v", what, err))
	}
	obj, err := ReadObject(path)
	if err != nil {
		fail("read", err)
		return verdict
	}
	if health, err := c.Health(runtimeDeepCopy(obj)); err != nil {
		fail("health.lua", err)
	} else {
		verdict.Health = &health
	}
	if actions, err := c.Discover(runtimeDeepCopy(obj)); err != nil {
		fail("discovery.lua", err)
	} else {
		verdict.Actions = actions
	}
	for _, action := range []struct {
		name, annotation string
		into             *string
	}{
		{"reissue", "ots.dev/reshare", &verdict.Reissue},
		{"burn", "ots.dev/burn", &verdict.Burn},
	} {
		acted, err := c.Act(action.name, runtimeDeepCopy(obj))
		if err != nil {
			fail(action.name, err)
			continue
		}
		field := []string{"metadata", "annotations", action.annotation}
		value, _, _ := unstructured.NestedString(acted, field...)
		*action.into = value
		if !reflect.DeepEqual(without(acted, field...), without(obj, field...)) {
			// An object without annotations gets an annotations map holding only this one.
			bare := without(acted, field...)
			annotations, found, _ := unstructured.NestedMap(bare, "metadata", "annotations")
			if !(found && len(annotations) == 0 && reflect.DeepEqual(without(bare, "metadata", "annotations"), without(obj, "metadata", "annotations"))) {
				verdict.ActionsTouchOnlyTheirField = false
			}
		}
	}
	if kstatus, err := ComputeKstatus(obj); err != nil {
		fail("kstatus", err)
	} else {
		verdict.Kstatus = &kstatus
	}
	if flux != nil {
		if judged, err := flux.Evaluate(runtimeDeepCopy(obj)); err != nil {
			fail("flux", err)
		} else {
			verdict.Flux = &judged
		}
	}
	return verdict
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gitops-check eval CUSTOMIZATION_DIR OBJECT... | gitops-check argocd-tests CUSTOMIZATION_DIR")
		os.Exit(2)
	}
	args := os.Args[2:]
	var flux *FluxCheck
	if os.Args[1] == "eval" && len(args) >= 3 && args[0] == "--flux" {
		check, err := LoadFluxCheck(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		flux = check
		args = args[2:]
	}
	c := Customization{Dir: args[0]}
	switch os.Args[1] {
	case "eval":
		out := json.NewEncoder(os.Stdout)
		for _, path := range args[1:] {
			if err := out.Encode(Evaluate(c, flux, path)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	case "argocd-tests":
		failures, ran := RunArgoTests(c)
		for _, failure := range failures {
			fmt.Println("FAIL", failure)
		}
		fmt.Printf("argo cd tests: %d ran, %d failing\n", ran, len(failures))
		if len(failures) > 0 || ran == 0 {
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
