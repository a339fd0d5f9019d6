package main

// Flux's healthCheckExprs, evaluated with Flux's own code: github.com/fluxcd/pkg/runtime/cel at
// the version kustomize-controller v1.9.6 uses (the newest release that builds with Go 1.26).
// kustomize-controller hands a Kustomization's spec.healthCheckExprs to cel.NewStatusReader,
// whose reader judges each object of a listed kind with a cel.StatusEvaluator; this program
// builds that reader from the list (so a list Flux would refuse is refused here too) and
// evaluates the OneTimeShare entry on each object, as the reader does for an object it reads.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FluxCheck is the OneTimeShare entry of a Kustomization's healthCheckExprs.
type FluxCheck struct {
	evaluator *cel.StatusEvaluator
}

// LoadFluxCheck reads a Kustomization (YAML) and prepares its OneTimeShare health check.
func LoadFluxCheck(path string) (*FluxCheck, error) {
	obj, err := ReadObject(path)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var kustomization struct {
		Spec struct {
			HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	// Only spec.healthCheckExprs is read; the Kustomization's other fields are left alone.
	if err := json.Unmarshal(data, &kustomization); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	checks := kustomization.Spec.HealthCheckExprs
	if _, err := cel.NewStatusReader(checks); err != nil {
		return nil, fmt.Errorf("%s: kustomize-controller would refuse healthCheckExprs: %w", path, err)
	}
	for i := range checks {
		if checks[i].APIVersion == "ots.dev/v1alpha1" && checks[i].Kind == "OneTimeShare" {
			evaluator, err := cel.NewStatusEvaluator(&checks[i].HealthCheckExpressions)
			if err != nil {
				return nil, err
			}
			return &FluxCheck{evaluator: evaluator}, nil
		}
	}
	return nil, fmt.Errorf("%s: no healthCheckExprs entry for ots.dev/v1alpha1 OneTimeShare", path)
}

// Evaluate is Flux's verdict on one object.
func (f *FluxCheck) Evaluate(obj map[string]interface{}) (Kstatus, error) {
	result, err := f.evaluator.Evaluate(context.Background(), &unstructured.Unstructured{Object: obj})
	if err != nil {
		return Kstatus{}, err
	}
	return Kstatus{Status: string(result.Status), Message: result.Message}, nil
}
