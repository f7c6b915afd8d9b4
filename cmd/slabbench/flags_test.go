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
	"hold":           {{[]string{"--hold", "1s"}, []string{"--hold", "fdhold"}}, {[]string{"--workload", "fdhold", "--ops", "5", "--hold", "-1s"}, []string{"--hold", ">= 0"}}},
	"stacks":         {{[]string{"--stacks=maybe"}, []string{"-stacks", "true or false"}}},
	"poll":           {{[]string{"--poll", "5s"}, []string{"--poll 5s", "100µs..1s"}}, {[]string{"--poll", "1ms", "--wakeup-bytes", "4096"}, []string{"--poll and --wakeup-bytes"}}, {[]string{"--path", "relay", "--poll", "1ms"}, []string{"--poll", "ringbuf or perfbuf"}}},
	"stack-depth":    {{[]string{"--stacks", "--stack-depth", "0"}, []string{"--stack-depth 0", "1..127"}}, {[]string{"--stack-depth", "200"}, []string{"--stack-depth 200", "1..127"}}},
	"stack-entries":  {{[]string{"--stacks", "--stack-entries", "0"}, []string{"--stack-entries 0", "1..1048576"}}},
}

// badTopFlags holds the cases of the flags that top has and capture has
// not, or that top takes differently; top's other flags get capture's
// cases, run with --workload openclose (top's default is none).
var badTopFlags = map[string][]struct {
	args []string
	want []string
}{
	"interval":    {{[]string{"--interval", "1ms"}, []string{"--interval", "10ms..1h"}}},
	"sort":        {{[]string{"--sort", "size"}, []string{"--sort", "outstanding-bytes, outstanding, allocs, bytes or age"}}},
	"top":         {{[]string{"--top", "-1"}, []string{"--top", ">= 0"}}},
	"min-age":     {{[]string{"--min-age", "-1s"}, []string{"--min-age", ">= 0"}}},
	"pid":         {{[]string{"--pid", "me"}, []string{"--pid", "process id", "self"}}},
	"max-tracked": {{[]string{"--max-tracked", "0"}, []string{"--max-tracked", "1..268435456"}}},
	"hold":        {{[]string{"--hold", "1s"}, []string{"--hold"}}, {[]string{"--workload", "fdhold", "--ops", "5", "--hold", "-1s"}, []string{"--hold", ">= 0"}}},
}

// TestEveryCaptureFlagNamesItself walks the flags capture -h and top -h
// list and checks that each invalid value is refused with one line
// naming the flag and the accepted range.
func TestEveryCaptureFlagNamesItself(t *testing.T) {
	for _, cmd := range []string{"capture", "top"} {
		out, _ := exec.Command(binary, cmd, "-h").CombinedOutput()
		names := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(string(out), -1)
		if len(names) < 10 {
			t.Fatalf("%s -h lists %d flags:\n%s", cmd, len(names), out)
		}
		for _, m := range names {
			name := m[1]
			cases, ok := badCaptureFlags[name]
			var prefix []string
			if cmd == "top" {
				prefix = []string{"--workload", "openclose"}
				if topCases, ok2 := badTopFlags[name]; ok2 {
					cases, ok, prefix = topCases, true, nil
				}
			}
			if !ok {
				t.Errorf("%s flag --%s has no invalid-value case", cmd, name)
				continue
			}
			for _, c := range cases {
				args := append(append([]string{cmd}, prefix...), c.args...)
				t.Run(cmd+"/"+name+"="+strings.Join(c.args, " "), func(t *testing.T) {
					oneLineError(t, exec.Command(binary, args...), c.want...)
				})
			}
		}
		oneLineError(t, exec.Command(binary, cmd, "--bogus"), "-bogus", cmd+" -h")
	}
}
