package main

// Argo CD's test files for a resource customization, as in argo-cd's resource_customizations:
// health_test.yaml (tests: healthStatus, inputPath; paths relative to the Kind's folder) and
// actions/action_test.yaml (discoveryTests: inputPath, result; actionTests: action, inputPath,
// expectedOutputPath; paths relative to actions/).

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type healthTests struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string   `json:"inputPath"`
		Result    []Action `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
}

// A reissue or burn value: the UTC time to the second (the test compares the rest of the object).
var reissueValue = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`)

// The actions that set an annotation to the time of the run, and that annotation.
var timedActions = map[string]string{"reissue": "ots.dev/reshare", "burn": "ots.dev/burn"}

func readYAML(path string, into interface{}) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, into)
}

// RunArgoTests runs every test of health_test.yaml and actions/action_test.yaml; it returns
// the failures and how many tests ran.
func RunArgoTests(c Customization) ([]string, int) {
	var failures []string
	ran := 0
	failf := func(format string, args ...interface{}) {
		failures = append(failures, fmt.Sprintf(format, args...))
	}

	var health healthTests
	if err := readYAML(filepath.Join(c.Dir, "health_test.yaml"), &health); err != nil {
		failf("health_test.yaml: %v", err)
	}
	for _, test := range health.Tests {
		ran++
		obj, err := ReadObject(filepath.Join(c.Dir, test.InputPath))
		if err != nil {
			failf("%s: %v", test.InputPath, err)
			continue
		}
		got, err := c.Health(obj)
		if err != nil {
			failf("%s: health.lua: %v", test.InputPath, err)
			continue
		}
		if got != test.HealthStatus {
			failf("%s: health %+v, want %+v", test.InputPath, got, test.HealthStatus)
		}
	}

	actionsDir := filepath.Join(c.Dir, "actions")
	var actions actionTests
	if err := readYAML(filepath.Join(actionsDir, "action_test.yaml"), &actions); err != nil {
		failf("actions/action_test.yaml: %v", err)
	}
	for _, test := range actions.DiscoveryTests {
		ran++
		obj, err := ReadObject(filepath.Join(actionsDir, test.InputPath))
		if err != nil {
			failf("%s: %v", test.InputPath, err)
			continue
		}
		got, err := c.Discover(obj)
		if err != nil {
			failf("%s: discovery.lua: %v", test.InputPath, err)
			continue
		}
		if !reflect.DeepEqual(got, test.Result) {
			failf("%s: actions %+v, want %+v", test.InputPath, got, test.Result)
		}
	}
	for _, test := range actions.ActionTests {
		ran++
		obj, err := ReadObject(filepath.Join(actionsDir, test.InputPath))
		if err != nil {
			failf("%s: %v", test.InputPath, err)
			continue
		}
		want, err := ReadObject(filepath.Join(actionsDir, test.ExpectedOutputPath))
		if err != nil {
			failf("%s: %v", test.ExpectedOutputPath, err)
			continue
		}
		got, err := c.Act(test.Action, obj)
		if err != nil {
			failf("%s on %s: %v", test.Action, test.InputPath, err)
			continue
		}
		if annotation, timed := timedActions[test.Action]; timed {
			// The value is the time of the run: its form is checked, then the expected one used.
			field := []string{"metadata", "annotations", annotation}
			value, _, _ := unstructured.NestedString(got, field...)
			if !reissueValue.MatchString(value) {
				failf("%s on %s: %s is %q, not a UTC time", test.Action, test.InputPath, annotation, value)
				continue
			}
			expected, _, _ := unstructured.NestedString(want, field...)
			_ = unstructured.SetNestedField(got, expected, field...)
		}
		if !reflect.DeepEqual(got, want) {
			failf("%s on %s: the result differs from %s", test.Action, test.InputPath, test.ExpectedOutputPath)
		}
	}
	return failures, ran
}
