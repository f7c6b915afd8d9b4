// Package results embeds the committed benchmark results files of this
// directory, so that `slabbench size` and the loss hint of `slabbench
// capture` read the measurements from any directory.
package results

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.txt
var files embed.FS

// Names lists the embedded results files, without the benchstat tables
// beside them, as paths relative to the repository ("results/…").
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if n := e.Name(); !strings.HasSuffix(n, ".benchstat.txt") {
			names = append(names, "results/"+n)
		}
	}
	return names
}

// Read returns the content of one of Names.
func Read(name string) ([]byte, error) {
	return files.ReadFile(strings.TrimPrefix(name, "results/"))
}
