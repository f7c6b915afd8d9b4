package relaytrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// StackFrames returns the frames (kernel addresses, innermost first) of
// stack id, from the module's stack table (Config.StackDepth > 0). Read
// them before Close: the table goes with the module.
func (c *Capture) StackFrames(id uint32) ([]uint64, error) {
	if c.cfg.StackDepth == 0 {
		return nil, errors.New("no stacks taken: capture with --stacks")
	}
	c.stacksMu.Lock()
	defer c.stacksMu.Unlock()
	if f, ok := c.stacks[id]; ok {
		return f, nil
	}
	// Stacks stored since the last read: the module only adds them.
	b, err := os.ReadFile(filepath.Join(debugfsDir, "stacks"))
	if err != nil {
		return nil, fmt.Errorf("relay stacks: %w", err)
	}
	if c.stacks, err = parseStacks(b); err != nil {
		return nil, err
	}
	if f, ok := c.stacks[id]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("relay stacks: stack %d is not in the module's table", id)
}

// parseStacks parses the module's stacks file: one stack per line, its id
// then its frames, in hex (format in stacks.c).
func parseStacks(b []byte) (map[uint32][]uint64, error) {
	stacks := map[uint32][]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<16)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			return nil, fmt.Errorf("slabrelay stacks line %d %q: want an id and at least one frame", line, sc.Text())
		}
		id, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("slabrelay stacks line %d: id: %w", line, err)
		}
		ips := make([]uint64, len(f)-1)
		for i, s := range f[1:] {
			if ips[i], err = strconv.ParseUint(s, 16, 64); err != nil {
				return nil, fmt.Errorf("slabrelay stacks line %d: frame %d: %w", line, i, err)
			}
		}
		stacks[uint32(id)] = ips
	}
	return stacks, sc.Err()
}
