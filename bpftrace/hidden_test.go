package bpftrace

import "testing"

func TestReleaseVersion(t *testing.T) {
	for release, want := range map[string][2]int{"6.18.44-fc-v1272": {6, 18}, "6.1.0-56-amd64": {6, 1}, "7.2.13+deb14-amd64": {7, 2}} {
		major, minor, ok := releaseVersion(release)
		if !ok || [2]int{major, minor} != want {
			t.Errorf("%s: %d.%d %v, want %v", release, major, minor, ok, want)
		}
	}
	if _, _, ok := releaseVersion("linux"); ok {
		t.Error("no version in \"linux\": parsed")
	}
}
