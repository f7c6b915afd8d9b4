package kleak

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Symbols resolves kernel text addresses, such as the call sites of slab
// events, to function+0xoffset from a kallsyms listing.
type Symbols struct {
	addrs []uint64 // sorted
	names []string // "function" or "function [module]"
}

// KallsymsPath is where the running kernel lists its symbols.
const KallsymsPath = "/proc/kallsyms"

// LoadSymbols reads the text symbols of a kallsyms listing. A listing whose
// addresses are all zero (kptr_restrict hides them from non-root users)
// is an error that says so.
func LoadSymbols(path string) (*Symbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel symbols: %w", err)
	}
	defer f.Close()
	type sym struct {
		addr uint64
		name string
	}
	var syms []sym
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff81234560 T name" or "ffffffffc0123450 t name\t[module]"
		addr, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok || len(rest) < 3 || rest[1] != ' ' {
			continue
		}
		switch rest[0] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		a, err := strconv.ParseUint(addr, 16, 64)
		if err != nil || a == 0 {
			continue
		}
		name, module, _ := strings.Cut(rest[2:], "\t")
		if module != "" {
			name += " " + module
		}
		syms = append(syms, sym{a, name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel symbols: %s: %w", path, err)
	}
	if len(syms) == 0 {
		return nil, errors.New("kernel symbols: " + path + " shows no text addresses: run as root, or set sysctl kernel.kptr_restrict=0")
	}
	sort.Slice(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	s := &Symbols{addrs: make([]uint64, len(syms)), names: make([]string, len(syms))}
	for i, y := range syms {
		s.addrs[i], s.names[i] = y.addr, y.name
	}
	return s, nil
}

// Resolve returns addr as function+0xoffset (with " [module]" for a
// module's symbol), or as hex when no symbol precedes it.
func (s *Symbols) Resolve(addr uint64) string {
	i := sort.Search(len(s.addrs), func(i int) bool { return s.addrs[i] > addr }) - 1
	if i < 0 {
		return fmt.Sprintf("%#x", addr)
	}
	name, module, _ := strings.Cut(s.names[i], " ")
	out := fmt.Sprintf("%s+%#x", name, addr-s.addrs[i])
	if module != "" {
		out += " " + module
	}
	return out
}
