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

// Names lists the embedded results files as paths relative to the
// repository ("results/…"). The benchstat tables beside them end in
// .benchstat and are not embedded.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		names = append(names, "results/"+e.Name())
	}
	return names
}

// Read returns the content of one of Names.
func Read(name string) ([]byte, error) {
	return files.ReadFile(strings.TrimPrefix(name, "results/"))
}
