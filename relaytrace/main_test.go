package relaytrace

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestMain checks the kernel log after every test of the package has run
// (where the module can load): nothing in it may have gone wrong.
func TestMain(m *testing.M) {
	code := m.Run()
	if Available("") == nil {
		for _, bad := range []string{"WARNING", "BUG", "Oops", "general protection"} {
			if l := kmsgSince(bad, time.Hour); len(l) > 0 {
				fmt.Printf("--- FAIL: kernel log after the relaytrace tests has %q: %v\n", bad, l)
				code = 1
			}
		}
	}
	os.Exit(code)
}
