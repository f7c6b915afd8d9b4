package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed init.sh
var initScript []byte

// guestModules are the modules the guest loads before it can see the host:
// virtio PCI transport, the virtio-serial ports that carry the command's
// output, and 9p over virtio for the shared filesystems. Their dependencies
// come from modules.dep.
var guestModules = []string{"virtio_pci", "virtio_console", "9pnet_virtio", "9p"}

// initramfs returns the path of a cached initramfs for the kernel release:
// busybox, /init and the guest modules. The cache key covers everything
// packed, so a changed busybox, module or init script makes a new one.
func initramfs(kernel, release string) (string, error) {
	busybox, err := staticBusybox()
	if err != nil {
		return "", err
	}
	modules, err := resolveModules(ModulesDir(kernel, release), release, guestModules)
	if err != nil {
		return "", err
	}

	key := sha256.New()
	fmt.Fprintf(key, "%s\n%s\n", release, initScript)
	for _, path := range append([]string{busybox}, modules...) {
		st, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(key, "%s %d %d\n", path, st.Size(), st.ModTime().UnixNano())
	}
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating initramfs cache: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("initramfs-%s-%s.cpio", release, hex.EncodeToString(key.Sum(nil))[:12]))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}

	var archive cpioWriter
	for _, d := range []string{"bin", "dev", "modules"} {
		archive.dir(d)
	}
	archive.charDevice("dev/console", 5, 1)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}
	archive.file("bin/busybox", 0o755, bb)
	archive.symlink("bin/sh", "busybox")
	archive.file("init", 0o755, initScript)
	var order strings.Builder
	for _, module := range modules {
		image, err := readModule(module)
		if err != nil {
			return "", err
		}
		name := moduleName(module) + ".ko"
		archive.file("modules/"+name, 0o644, image)
		order.WriteString(name + "\n")
	}
	archive.file("modules/order", 0o644, []byte(order.String()))
	archive.trailer()

	tmp, err := os.CreateTemp(dir, "initramfs-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(archive.buf.Bytes()); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// cacheDir is $XDG_CACHE_HOME/slabbench/vm (or ~/.cache/...), falling back
// to the temp dir where there is no home.
func cacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "slabbench", "vm")
	}
	return filepath.Join(os.TempDir(), "slabbench-vm")
}

// staticBusybox finds a statically linked busybox: the initramfs has no
// libc for a dynamic one.
func staticBusybox() (string, error) {
	for _, path := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		interp, err := ELFInterpreter(path)
		if err != nil {
			return "", err
		}
		if interp == "" {
			return path, nil
		}
		return "", &MissingPackageError{Package: "busybox-static", What: path + " is dynamically linked"}
	}
	return "", &MissingPackageError{Package: "busybox-static", What: "no /bin/busybox"}
}

// ELFInterpreter returns the dynamic loader (PT_INTERP) an ELF executable
// asks for, or "" for a static one.
func ELFInterpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return "", fmt.Errorf("%s: reading PT_INTERP: %w", path, err)
			}
			return string(bytes.TrimRight(b, "\x00")), nil
		}
	}
	return "", nil
}

// ModulesDir returns where the modules of the kernel image at kernel
// (release) are: /lib/modules/<release> when that kernel is installed; the
// image's own directory when it holds modules.dep (current Debian packages
// ship the image as lib/modules/<release>/vmlinuz); else
// lib/modules/<release> beside the boot/ directory holding the image.
func ModulesDir(kernel, release string) string {
	installed := filepath.Join("/lib/modules", release)
	candidates := []string{installed, filepath.Dir(kernel),
		filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib/modules", release)}
	for _, dir := range candidates {
		if fileExists(filepath.Join(dir, "modules.dep")) {
			return dir
		}
	}
	return installed
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// resolveModules returns the module files under root to insmod,
// dependencies first, for the wanted modules that the kernel does not have
// built in.
func resolveModules(root, release string, wanted []string) ([]string, error) {
	deps := map[string][]string{} // module name -> its file and its dependencies' files
	paths := map[string]string{}  // file relative to root -> module name
	depFile, err := os.Open(filepath.Join(root, "modules.dep"))
	if err != nil {
		return nil, &MissingPackageError{Package: "linux-image-" + release, What: "no " + root + "/modules.dep"}
	}
	defer depFile.Close()
	scanner := bufio.NewScanner(depFile)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		module, depList, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			continue
		}
		deps[moduleName(module)] = strings.Fields(depList)
		paths[moduleName(module)] = module
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(root, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtin[moduleName(line)] = true
		}
	}

	var order []string
	done := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if done[name] || builtin[name] {
			return nil
		}
		file, ok := paths[name]
		if !ok {
			return fmt.Errorf("kernel %s has module %s neither built in nor in %s/modules.dep; the VM needs it to share files with the host", release, name, root)
		}
		done[name] = true
		// modules.dep lists the full closure, nearest dependency first;
		// visiting from the end loads the deepest ones first.
		list := deps[name]
		for i := len(list) - 1; i >= 0; i-- {
			if err := visit(moduleName(list[i])); err != nil {
				return err
			}
		}
		order = append(order, filepath.Join(root, file))
		return nil
	}
	for _, name := range wanted {
		if err := visit(moduleName(name)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName turns "kernel/net/9p/9pnet-virtio.ko.xz" into "9pnet_virtio",
// the name the kernel uses ('-' and '_' are the same to it).
func moduleName(path string) string {
	name := filepath.Base(path)
	if i := strings.Index(name, ".ko"); i >= 0 {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "-", "_")
}

// readModule returns a module's ELF image, decompressing the .ko.gz,
// .ko.xz and .ko.zst that some distributions ship (busybox insmod wants
// plain ELF).
func readModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return io.ReadAll(z)
	case strings.HasSuffix(path, ".ko.xz"):
		return decompressWith(path, "xz", "xz-utils")
	case strings.HasSuffix(path, ".ko.zst"):
		return decompressWith(path, "zstd", "zstd")
	}
	return nil, fmt.Errorf("%s: unknown module compression", path)
}

func decompressWith(path, tool, pkg string) ([]byte, error) {
	if _, err := exec.LookPath(tool); err != nil {
		return nil, &MissingPackageError{Package: pkg, What: "no " + tool + " to decompress " + path}
	}
	out, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %w", tool, path, err)
	}
	return out, nil
}

// cpioWriter builds a "newc" cpio archive, the format the kernel unpacks
// into its initramfs; writing it here needs neither the cpio tool nor root
// (for /dev/console).
type cpioWriter struct {
	buf   bytes.Buffer
	inode int
}

func (w *cpioWriter) dir(name string) { w.entry(name, 0o040755, 0, 0, nil) }
func (w *cpioWriter) file(name string, perm int, data []byte) {
	w.entry(name, 0o100000|perm, 0, 0, data)
}
func (w *cpioWriter) symlink(name, target string) { w.entry(name, 0o120777, 0, 0, []byte(target)) }
func (w *cpioWriter) charDevice(name string, major, minor int) {
	w.entry(name, 0o020600, major, minor, nil)
}
func (w *cpioWriter) trailer() { w.entry("TRAILER!!!", 0, 0, 0, nil) }

func (w *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor int, data []byte) {
	w.inode++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with NUL), check.
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}
