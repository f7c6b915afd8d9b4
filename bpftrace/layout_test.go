package bpftrace

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"

	"github.com/slabbench/slabbench/event"
)

// goFieldName maps a C member name to the Go field of event.Record.
func goFieldName(c string) string {
	special := map[string]string{"ts_ns": "TsNs", "cpu": "CPU", "stack_id": "StackID"}
	if g, ok := special[c]; ok {
		return g
	}
	var b strings.Builder
	for _, part := range strings.Split(c, "_") {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// TestRecordLayoutMatchesBTF compares struct slab_event, as compiled into
// the BPF object, with event.Record: size, and every field's name, offset
// and size, in order. Editing the C header without the Go side fails here
// (after go generate), and so does the reverse.
func TestRecordLayoutMatchesBTF(t *testing.T) {
	spec, err := loadSlab()
	if err != nil {
		t.Fatal(err)
	}
	var cStruct *btf.Struct
	if err := spec.Types.TypeByName("slab_event", &cStruct); err != nil {
		t.Fatalf("struct slab_event not in the object's BTF: %v", err)
	}
	goType := reflect.TypeOf(event.Record{})
	if int(cStruct.Size) != int(goType.Size()) || event.RecordSize != int(cStruct.Size) {
		t.Fatalf("sizeof(struct slab_event) = %d, Go event.Record = %d", cStruct.Size, goType.Size())
	}
	if len(cStruct.Members) != goType.NumField() {
		t.Fatalf("struct slab_event has %d members, event.Record %d fields", len(cStruct.Members), goType.NumField())
	}
	for i, m := range cStruct.Members {
		f := goType.Field(i)
		if want := goFieldName(m.Name); f.Name != want {
			t.Errorf("member %d: C %s, Go field %s (want %s)", i, m.Name, f.Name, want)
		}
		if off := m.Offset.Bytes(); int(off) != int(f.Offset) {
			t.Errorf("%s: C offset %d, Go offset %d", m.Name, off, f.Offset)
		}
		sz, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		if sz != int(f.Type.Size()) {
			t.Errorf("%s: C size %d, Go size %d", m.Name, sz, f.Type.Size())
		}
	}
}

// TestDecodeRoundTrip checks that Decode reads each field at the
// offset the C struct has, by encoding distinct values and decoding them.
func TestDecodeRoundTrip(t *testing.T) {
	in := event.Record{TsNs: 1, Seq: 2, CallSite: 3, Ptr: 4, BytesReq: 5, BytesAlloc: 6, GfpFlags: 7, StackID: 12,
		Truth: 8, Tgid: 9, Pid: 10, CPU: 11, Kind: event.KindKmemCacheFree, Flags: event.FlagTruth}
	buf := make([]byte, event.RecordSize)
	in.Encode(buf)
	var out event.Record
	if err := out.Decode(buf); err != nil {
		t.Fatal(err)
	}
	if in != out {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	// The byte offsets Decode uses are those of the Go struct, which the
	// test above ties to the C struct (little-endian hosts).
	if viaMemory := *(*event.Record)(unsafe.Pointer(&buf[0])); viaMemory != in {
		t.Fatalf("Decode offsets differ from the struct layout: memory view %+v, want %+v", viaMemory, in)
	}
	if err := out.Decode(buf[:event.RecordSize-1]); err == nil {
		t.Fatal("Decode accepted a truncated record")
	}
}
