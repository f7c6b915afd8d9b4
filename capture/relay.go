package capture

import (
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/relaytrace"
)

func openRelay(cfg Config) (event.Capture, error) {
	return relaytrace.Open(relaytrace.Config{
		SubbufSize: cfg.SubbufSize,
		NumSubbufs: cfg.NumSubbufs,
		Overwrite:  cfg.Overwrite,
		Kinds:      cfg.Kinds,
		Truth:      cfg.Truth,
	})
}
