package vm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// KernelRelease reads the release string (what `uname -r` prints in the
// guest, e.g. "6.1.0-56-amd64") from an x86 bzImage's setup header, so the
// matching /lib/modules/<release> is found without trusting the file name.
func KernelRelease(vmlinuz string) (string, error) {
	f, err := os.Open(vmlinuz)
	if err != nil {
		return "", fmt.Errorf("reading kernel image: %w (qemu must read it too: chmod a+r %s or run as root)", err, vmlinuz)
	}
	defer f.Close()
	var hdr [0x210]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return "", fmt.Errorf("%s: too short for a bzImage: %w", vmlinuz, err)
	}
	// Boot protocol: "HdrS" at 0x202; at 0x20e a pointer, relative to
	// 0x200, to the NUL-terminated "release (builder) #version ..." string.
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s is not an x86 bzImage (no HdrS setup header)", vmlinuz)
	}
	ptr := binary.LittleEndian.Uint16(hdr[0x20e:])
	if ptr == 0 {
		return "", fmt.Errorf("%s: setup header carries no kernel version string", vmlinuz)
	}
	var buf [256]byte
	n, err := f.ReadAt(buf[:], int64(ptr)+0x200)
	if n == 0 {
		return "", fmt.Errorf("%s: reading kernel version string: %w", vmlinuz, err)
	}
	version := buf[:n]
	if i := bytes.IndexByte(version, 0); i >= 0 {
		version = version[:i]
	}
	release, _, _ := strings.Cut(string(version), " ")
	if release == "" {
		return "", fmt.Errorf("%s: empty kernel version string", vmlinuz)
	}
	return release, nil
}

// DefaultKernel returns the newest /boot/vmlinuz-* whose modules are
// installed under /lib/modules/<release>; the guest needs those modules
// (9p, virtio) to reach the host filesystem.
func DefaultKernel() (string, error) {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	type candidate struct{ path, release string }
	var usable []candidate
	for _, image := range images {
		release := strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", release, "modules.dep")); err == nil {
			usable = append(usable, candidate{image, release})
		}
	}
	if len(usable) == 0 {
		return "", &MissingPackageError{
			Package: "linux-image-amd64",
			What:    "no /boot/vmlinuz-<release> with modules in /lib/modules/<release>",
		}
	}
	sort.Slice(usable, func(i, j int) bool { return versionLess(usable[i].release, usable[j].release) })
	return usable[len(usable)-1].path, nil
}

// versionLess orders kernel releases by their numeric runs, so that
// 6.1.0-56 sorts after 6.1.0-9.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ai, bi := leadingRun(a), leadingRun(b)
		ra, rb := a[:ai], b[:bi]
		if ra != rb {
			na, nb := isDigit(ra[0]), isDigit(rb[0])
			switch {
			case na && nb:
				ra, rb = strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
				if len(ra) != len(rb) {
					return len(ra) < len(rb)
				}
				return ra < rb
			case na != nb:
				return nb // a letter run sorts before a number run
			default:
				return ra < rb
			}
		}
		a, b = a[ai:], b[bi:]
	}
	return len(a) < len(b)
}

// leadingRun is the length of s's leading run of digits or of non-digits.
func leadingRun(s string) int {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// bootableVmlinux returns an uncompressed, PVH-bootable copy of the bzImage
// (cached next to the initramfs), or "" where the kernel cannot be booted
// that way. Under TCG the bzImage decompressing itself is a large part of
// every boot (docs/vm.md); qemu starts an ELF vmlinux with a PVH entry
// note directly.
func bootableVmlinux(vmlinuz, release string) (string, error) {
	st, err := os.Stat(vmlinuz)
	if err != nil {
		return "", err
	}
	dir := cacheDir()
	path := filepath.Join(dir, fmt.Sprintf("vmlinux-%s-%d-%d", release, st.Size(), st.ModTime().UnixNano()))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	image, err := os.ReadFile(vmlinuz)
	if err != nil {
		return "", err
	}
	if len(image) < 0x250 {
		return "", nil
	}
	// Boot protocol 2.08+: the compressed payload follows the setup
	// sectors; its offset (from there) and length are at 0x248 and 0x24c.
	setupSectors := int(image[0x1f1])
	if setupSectors == 0 {
		setupSectors = 4
	}
	start := (setupSectors+1)*512 + int(binary.LittleEndian.Uint32(image[0x248:]))
	length := int(binary.LittleEndian.Uint32(image[0x24c:]))
	if length < 4 || start+length > len(image) {
		return "", nil
	}
	// The build appends the uncompressed size (4 bytes) to the stream.
	payload := image[start : start+length-4]
	var tool string
	switch {
	case bytes.HasPrefix(payload, []byte("\xfd7zXZ\x00")):
		tool = "xz"
	case bytes.HasPrefix(payload, []byte("\x28\xb5\x2f\xfd")):
		tool = "zstd"
	case bytes.HasPrefix(payload, []byte("\x1f\x8b")):
		tool = "gzip"
	default:
		return "", nil
	}
	if _, err := exec.LookPath(tool); err != nil {
		return "", nil
	}
	decompress := exec.Command(tool, "-dc")
	decompress.Stdin = bytes.NewReader(payload)
	vmlinux, err := decompress.Output()
	if err != nil {
		return "", fmt.Errorf("decompressing %s with %s: %w", vmlinuz, tool, err)
	}
	if !hasPVHNote(vmlinux) {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "vmlinux-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(vmlinux); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// hasPVHNote reports whether an ELF vmlinux carries the Xen
// PHYS32_ENTRY note (type 18) that qemu needs to boot it directly.
func hasPVHNote(vmlinux []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(prog.Open())
		if err != nil {
			return false
		}
		for len(notes) >= 12 {
			nameSize := int(binary.LittleEndian.Uint32(notes[0:]))
			descSize := int(binary.LittleEndian.Uint32(notes[4:]))
			noteType := binary.LittleEndian.Uint32(notes[8:])
			nameEnd := 12 + (nameSize+3)&^3
			end := nameEnd + (descSize+3)&^3
			if end > len(notes) {
				break
			}
			if noteType == 18 && string(bytes.TrimRight(notes[12:12+nameSize], "\x00")) == "Xen" {
				return true
			}
			notes = notes[end:]
		}
	}
	return false
}
