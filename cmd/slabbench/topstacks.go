package main

import (
	"fmt"
	"sync"

	"github.com/slabbench/slabbench/kleak"
)

// stackNames names the frames of the capture's stacks (top --stacks), as
// function+0xoff [module], once per stack id. The stack map goes with
// the capture, so the ids the table holds are named before it closes
// (prefetch).
type stackNames struct {
	mu     sync.Mutex
	frames func(id uint32) ([]uint64, error)
	syms   *kleak.Symbols
	named  map[uint32][]string
}

func newStackNames(frames func(uint32) ([]uint64, error), syms *kleak.Symbols) *stackNames {
	return &stackNames{frames: frames, syms: syms, named: map[uint32][]string{}}
}

// get returns stack id's named frames, innermost first; a stack the map
// no longer holds is one line saying so.
func (n *stackNames) get(id uint32) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if names, ok := n.named[id]; ok {
		return names
	}
	ips, err := n.frames(id)
	if err != nil {
		return []string{fmt.Sprintf("(stack %d unreadable: %v)", id, err)}
	}
	names := make([]string, len(ips))
	for i, ip := range ips {
		names[i] = n.syms.Resolve(ip)
	}
	n.named[id] = names
	return names
}

// prefetch names every stack of ids while the capture is still open.
func (n *stackNames) prefetch(ids []uint32) {
	for _, id := range ids {
		n.get(id)
	}
}
