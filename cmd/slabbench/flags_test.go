package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// badCaptureFlags holds, for every flag of capture, invalid values and
// what the one-line error must say: the flag and what it accepts. None of
// them gets as far as loading anything.
var badCaptureFlags = map[string][]struct {
	args []string
	want []string
}{
	"path":           {{[]string{"--path", "pigeon"}, []string{"--path", "ringbuf, perfbuf or relay"}}},
	"attach":         {{[]string{"--attach", "wings"}, []string{"--attach", "tracepoint, rawtp, kprobe or fentry"}}},
	"events":         {{[]string{"--events", "kmalloc,bogus"}, []string{"--events", "bogus", "kmem_cache_free"}}},
	"workload":       {{[]string{"--workload", "nope"}, []string{"--workload", "openclose", "none"}}},
	"ops":            {{[]string{"--ops", "-1"}, []string{"--ops", "> 0"}}, {[]string{"--ops", "many"}, []string{"-ops", "integer"}}},
	"threads":        {{[]string{"--threads", "0"}, []string{"--threads", "1..1024"}}, {[]string{"--threads", "5000"}, []string{"--threads", "1..1024"}}},
	"rate":           {{[]string{"--rate", "-5"}, []string{"--rate", "1..1e+09"}}, {[]string{"--rate", "fast"}, []string{"-rate", "number"}}},
	"duration":       {{[]string{"--duration", "-1s"}, []string{"--duration", "> 0"}}, {[]string{"--duration", "5"}, []string{"-duration", "500ms"}}},
	"subbuf-size":    {{[]string{"--subbuf-size", "0"}, []string{"--subbuf-size", "> 0"}}, {[]string{"--path", "relay", "--subbuf-size", "100"}, []string{"--subbuf-size", "144..33554432"}}, {[]string{"--subbuf-size", "12x"}, []string{"-subbuf-size", "16KiB"}}},
	"subbufs":        {{[]string{"--subbufs", "0"}, []string{"--subbufs", ">= 1"}}, {[]string{"--path", "relay", "--subbufs", "1"}, []string{"--subbufs", "2..65536"}}},
	"ringbuf-size":   {{[]string{"--ringbuf-size", "2GiB"}, []string{"--ringbuf-size", "1..1073741824"}}, {[]string{"--path", "perfbuf", "--ringbuf-size", "4096"}, []string{"--ringbuf-size", "only for --path ringbuf"}}},
	"wakeup-bytes":   {{[]string{"--subbuf-size", "4KiB", "--subbufs", "2", "--ringbuf-size", "8KiB", "--wakeup-bytes", "8KiB"}, []string{"--wakeup-bytes", "0..8191"}}, {[]string{"--path", "relay", "--wakeup-bytes", "4096"}, []string{"--wakeup-bytes", "ringbuf or perfbuf"}}},
	"overwrite":      {{[]string{"--overwrite"}, []string{"--overwrite", "--path relay"}}},
	"consumer-stall": {{[]string{"--consumer-stall", "-1s"}, []string{"--consumer-stall", ">= 0"}}},
	"consumer-cpu":   {{[]string{"--consumer-cpu", "4096"}, []string{"--consumer-cpu", "want one of the CPUs"}}, {[]string{"--consumer-cpu", "-2"}, []string{"--consumer-cpu", "want one of the CPUs"}}},
	"truth":          {{[]string{"--truth", "maybe"}, []string{"--truth", "on or off"}}},
	"json":           {{[]string{"--json=maybe"}, []string{"-json", "true or false"}}},
}

// TestEveryCaptureFlagNamesItself walks the flags capture -h lists and
// checks that each invalid value is refused with one line naming the flag
// and the accepted range.
func TestEveryCaptureFlagNamesItself(t *testing.T) {
	out, _ := exec.Command(binary, "capture", "-h").CombinedOutput()
	names := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(string(out), -1)
	if len(names) < 10 {
		t.Fatalf("capture -h lists %d flags:\n%s", len(names), out)
	}
	for _, m := range names {
		name := m[1]
		cases, ok := badCaptureFlags[name]
		if !ok {
			t.Errorf("flag --%s has no invalid-value case in badCaptureFlags", name)
			continue
		}
		for _, c := range cases {
			t.Run(name+"="+strings.Join(c.args, " "), func(t *testing.T) {
				oneLineError(t, exec.Command(binary, append([]string{"capture"}, c.args...)...), c.want...)
			})
		}
	}
	oneLineError(t, exec.Command(binary, "capture", "--bogus"), "-bogus", "capture -h")
}
