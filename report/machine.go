package report

import (
	"strconv"
	"strings"
)

// Machine is where a results file was measured, from its configuration
// lines: the CPU model (`cpu:`, which the testing package prints), the
// CPU count, the kernel, the environment and the commit of the harness.
type Machine struct {
	File        string `json:"file,omitempty"`
	Environment string `json:"environment"`
	CPU         string `json:"cpu"`
	CPUs        int    `json:"cpus"`
	Kernel      string `json:"kernel"`
	Commit      string `json:"commit,omitempty"`
}

// Machine returns where the section was measured; a key the file lacks
// reads "unknown" (0 CPUs).
func (s *Section) Machine() Machine {
	cpus, _ := strconv.Atoi(s.ConfigValue("cpus"))
	return Machine{File: s.File, Environment: s.Environment, CPU: orUnknown(s.ConfigValue("cpu")), CPUs: cpus,
		Kernel: s.Kernel, Commit: orUnknown(s.ConfigValue("commit"))}
}

// SameHardware says whether m and o have the same CPU model and count.
func (m Machine) SameHardware(o Machine) bool { return m.CPU == o.CPU && m.CPUs == o.CPUs }

// MachineOf returns where the rows of environment env ("native",
// "vm-tcg"; any kernel) were measured: the first such results file's
// machine, by file name.
func (sm SizingModel) MachineOf(env string) Machine {
	var out Machine
	for k, m := range sm.Machines {
		if e, _, _ := strings.Cut(k, " "); e == env && (out.File == "" || m.File < out.File) {
			out = m
		}
	}
	return out
}
