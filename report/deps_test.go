package report

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoCaptureCode keeps the offline half (report, sizing) offline: reading results
// files must not link the capture stack (a user regenerating the report
// needs no BPF, module or workload code).
func TestLinksNoCaptureCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../sizing").Output()
	if err != nil {
		t.Skip("go list unavailable: ", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/cilium/", "/bpftrace", "/relaytrace", "/workloads", "/slabbench/capture", "/truth"} {
			if strings.Contains(dep, banned) {
				t.Errorf("report links %s", dep)
			}
		}
	}
}
