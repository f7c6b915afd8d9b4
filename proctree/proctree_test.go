package proctree

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/slabbench/slabbench/internal/testenv"
)

// startPrinting starts script under the tree; it prints a pid per line
// (its own, its children's), read until n lines came.
func startPrinting(t *testing.T, tr *Tree, script string, n int) (*exec.Cmd, []uint32) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(cmd); err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	sc := bufio.NewScanner(out)
	for len(pids) < n && sc.Scan() {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		pids = append(pids, uint32(pid))
	}
	return cmd, pids
}

// TestTreeFollowsChildren: the program, its child and its grandchild are
// in the tree; this process and init are not.
func TestTreeFollowsChildren(t *testing.T) {
	testenv.RequireRoot(t)
	tr, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cmd, pids := startPrinting(t, tr, treeScript, 3)
	defer cmd.Wait()
	if len(pids) != 3 || pids[0] != uint32(cmd.Process.Pid) {
		t.Fatalf("pids %v, want the root %d and two descendants", pids, cmd.Process.Pid)
	}
	for _, pid := range pids {
		if !tr.Contains(pid) {
			t.Errorf("process %d of the tree (%v) is not in it", pid, pids)
		}
	}
	for _, pid := range []uint32{uint32(os.Getpid()), 1} {
		if tr.Contains(pid) {
			t.Errorf("process %d is in the tree, want only the program's", pid)
		}
	}
	if tr.Full() != 0 {
		t.Errorf("Full %d, want 0", tr.Full())
	}
}

// TestTreeFullIsCounted: a tree of two holds the program and one child;
// the grandchild is counted as not followed.
func TestTreeFullIsCounted(t *testing.T) {
	testenv.RequireRoot(t)
	tr, err := Open(2)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cmd, pids := startPrinting(t, tr, treeScript, 3)
	defer cmd.Wait()
	if len(pids) != 3 || !tr.Contains(pids[0]) || !tr.Contains(pids[1]) || tr.Contains(pids[2]) || tr.Full() != 1 {
		t.Errorf("pids %v: in the tree %v %v %v, full %d; want the first two in, the third counted full",
			pids, tr.Contains(pids[0]), tr.Contains(pids[1]), tr.Contains(pids[2]), tr.Full())
	}
}

// treeScript prints the pids of a shell, its child and its grandchild
// (the trailing trues keep dash from exec'ing a last command in place).
const treeScript = `echo $$; sh -c 'echo $$; sh -c "echo \$\$; sleep 1"; true'; true`
