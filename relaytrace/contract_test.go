package relaytrace

import (
	"context"
	"testing"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/event/eventtest"
)

// TestReaderContract holds the relay reader to the contract every path
// keeps (event/eventtest), on the live module (in the VM).
func TestReaderContract(t *testing.T) {
	eventtest.Run(t, eventtest.Harness{
		Open: func(t *testing.T) event.Capture {
			needModule(t)
			c, err := Open(Config{SubbufSize: 4096, NumSubbufs: 64, Truth: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		// An open/close makes at least 2 events (6 on the kernels here),
		// and at most one sub-buffer of 50 records stays open per CPU.
		Produce: func(t *testing.T, c event.Capture, n int) {
			openClose(context.Background(), n/2+2*50)
		},
	})
}
