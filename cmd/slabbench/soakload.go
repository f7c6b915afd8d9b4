package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// soakLoads are the background loads a soak captures under: the
// interrupt, softirq and deferred-free traffic where a truth counter
// could lose its way.
var soakLoads = map[string]func(ctx context.Context) error{
	"none":      func(ctx context.Context) error { <-ctx.Done(); return nil },
	"net":       loopbackTraffic,
	"pagecache": pageCachePressure,
	"forkexit":  forkExitLoop,
}

// soakLoadNames is soakLoads' keys in the order the table prints them.
var soakLoadNames = []string{"none", "net", "pagecache", "forkexit"}

// runLoad runs the load named until ctx ends; the returned function
// stops it and reports its error.
func runLoad(ctx context.Context, name string) func() error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = soakLoads[name](ctx)
	}()
	return func() error {
		cancel()
		wg.Wait()
		return err
	}
}

// loopbackTraffic streams bytes over a loopback TCP connection: socket
// buffers allocated and freed, much of it in softirq (NET_RX).
func loopbackTraffic(ctx context.Context) error {
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("net load: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("net load: %w", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("net load: %w", err)
		}
		for i := 0; i < 256 && ctx.Err() == nil; i++ {
			if _, err := c.Write(buf); err != nil {
				break
			}
		}
		c.Close() // a new connection now and then: its sockets too
	}
	return nil
}

// pageCachePressure writes a file and drops it from the page cache, over
// and over: page cache and filesystem metadata allocated and freed,
// writeback and RCU frees beside the capture.
func pageCachePressure(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "slabbench-soak-")
	if err != nil {
		return fmt.Errorf("pagecache load: %w", err)
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, 1<<20)
	for i := 0; ctx.Err() == nil; i++ {
		name := filepath.Join(dir, fmt.Sprintf("f%d", i%8))
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("pagecache load: %w", err)
		}
		for j := 0; j < 8; j++ {
			f.Write(buf)
		}
		f.Sync()
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
	return nil
}

// forkExitLoop starts and reaps short-lived processes: task, mm and file
// structures made and torn down, frees deferred past exit.
func forkExitLoop(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("forkexit load: %w", err)
	}
	for ctx.Err() == nil {
		cmd := exec.Command(self, "--version")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		cmd.Run() // its exit status does not matter, its life does
	}
	return nil
}

// loopbackUp brings the loopback interface up where it is down (the VM's
// minimal guest does not).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("flags of lo: %w", err)
	}
	if flags := ifr.Uint16(); flags&unix.IFF_UP == 0 {
		ifr.SetUint16(flags | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("bringing lo up (needs root): %w", err)
		}
	}
	return nil
}
