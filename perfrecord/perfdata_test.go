package perfrecord

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestCountPerfData builds a small perf.data with two tracepoint events and
// a dummy event and checks the per-event counts.
func TestCountPerfData(t *testing.T) {
	le := binary.LittleEndian
	const attrSize = 136 + 16 // perf_event_attr (v8) + ids section
	u64 := func(b *bytes.Buffer, v ...uint64) {
		for _, x := range v {
			binary.Write(b, le, x)
		}
	}
	type ev struct {
		typ    uint32
		config uint64
		ids    []uint64
	}
	evs := []ev{{2, 100, []uint64{11, 12}}, {2, 101, []uint64{21, 22}}, {1, 9, []uint64{31, 32}}}
	idsOff := uint64(fileHeaderSize)
	attrsOff := idsOff + 6*8
	dataOff := attrsOff + uint64(len(evs))*attrSize

	var data bytes.Buffer
	rec := func(typ uint32, misc uint16, body ...uint64) {
		binary.Write(&data, le, typ)
		binary.Write(&data, le, misc)
		binary.Write(&data, le, uint16(8+8*len(body)))
		u64(&data, body...)
	}
	rec(recordSample, 0, 11, 0xdead, 1)
	rec(recordSample, 0, 12, 0xdead)
	rec(recordSample, 0, 21, 0xdead, 1, 2)
	rec(recordLost, 0, 11, 7, 11)
	rec(68, 0) // FINISHED_ROUND
	rec(recordLostSamples, 0, 3, 0, 11)
	rec(recordLostSamples, 0, 4, 0, 12)
	rec(recordLostSamples, miscLostSamplesBPF, 100, 0, 12)
	rec(recordLostSamples, 0, 2, 0, 32)

	var f bytes.Buffer
	u64(&f, perfMagic, fileHeaderSize, attrSize, attrsOff, uint64(len(evs))*attrSize, dataOff, uint64(data.Len()), 0, 0, 0, 0, 0, 0)
	for _, e := range evs {
		u64(&f, e.ids...)
	}
	for i, e := range evs {
		attr := make([]byte, attrSize)
		le.PutUint32(attr[0:], e.typ)
		le.PutUint64(attr[8:], e.config)
		le.PutUint64(attr[24:], sampleIdentifier)
		le.PutUint64(attr[attrSize-16:], idsOff+uint64(i)*16)
		le.PutUint64(attr[attrSize-8:], 16)
		f.Write(attr)
	}
	f.Write(data.Bytes())

	c, err := countPerfDataFrom(bytes.NewReader(f.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	a, b, d := eventKey{2, 100}, eventKey{2, 101}, eventKey{1, 9}
	if c.samples[a] != 2 || c.samples[b] != 1 || c.samples[d] != 0 {
		t.Errorf("samples %v, want 2 for %v and 1 for %v", c.samples, a, b)
	}
	if c.lostSamples[a] != 7 || c.lostSamples[b] != 0 || c.lostSamples[d] != 2 || !c.haveLostSamples {
		t.Errorf("lost samples %v, want 7 for %v and 2 for %v", c.lostSamples, a, d)
	}
	if c.lostRecords != 7 {
		t.Errorf("lost records %d, want 7", c.lostRecords)
	}

	// A header whose data size perf never filled in is an error.
	bad := bytes.Clone(f.Bytes())
	le.PutUint64(bad[48:], 0)
	if _, err := countPerfDataFrom(bytes.NewReader(bad)); err == nil {
		t.Error("empty data section accepted")
	}
}
