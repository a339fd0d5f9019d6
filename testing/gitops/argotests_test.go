package main

import "testing"

// The Argo CD tests of the OneTimeShare customization pass in Argo CD's Lua environment.
func TestOneTimeShareCustomization(t *testing.T) {
	failures, ran := RunArgoTests(Customization{Dir: "../../deploy/argocd/ots.dev/OneTimeShare"})
	for _, failure := range failures {
		t.Error(failure)
	}
	if ran == 0 {
		t.Fatal("no test ran")
	}
}
