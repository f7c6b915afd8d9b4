package perfrecord

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// perf.data (PERFILE2) layout, from tools/perf/Documentation/perf.data-file-format.txt.
const (
	perfMagic = 0x32454c4946524550 // "PERFILE2" read as a little-endian u64

	fileHeaderSize = 104 // magic, size, attr_size, attrs, data, event_types, 256-bit features

	recordLost        = 2  // PERF_RECORD_LOST: id, lost, sample_id
	recordSample      = 9  // PERF_RECORD_SAMPLE
	recordLostSamples = 13 // PERF_RECORD_LOST_SAMPLES: lost, sample_id
	recordCompressed  = 81 // PERF_RECORD_COMPRESSED (perf record -z)
	recordCompressed2 = 83 // PERF_RECORD_COMPRESSED2 (newer perf -z)

	sampleIdentifier = 1 << 16 // PERF_SAMPLE_IDENTIFIER

	// miscLostSamplesBPF marks PERF_RECORD_LOST_SAMPLES for samples a BPF
	// filter dropped on purpose (perf record --filter with BPF), not loss.
	miscLostSamplesBPF = 1 << 15
)

// eventKey names an event of a perf.data file: attr.type and attr.config
// (for a tracepoint, PERF_TYPE_TRACEPOINT and its id).
type eventKey struct {
	typ    uint32
	config uint64
}

// perfTypeTracepoint is PERF_TYPE_TRACEPOINT.
const perfTypeTracepoint = 2

// dataCounts is what one pass over a perf.data file finds.
type dataCounts struct {
	samples     map[eventKey]uint64 // PERF_RECORD_SAMPLE count per event
	lostSamples map[eventKey]uint64 // sum of PERF_RECORD_LOST_SAMPLES.lost per event
	// lostRecords sums PERF_RECORD_LOST.lost: per ring buffer, so it
	// also holds what perf's sideband ("dummy") event lost.
	lostRecords     uint64
	haveLostSamples bool // the file holds PERF_RECORD_LOST_SAMPLES (perf >= 6.0 on kernel >= 6.0)
}

// attrEntry is one event of the attrs section.
type attrEntry struct {
	key        eventKey
	sampleType uint64
	ids        []uint64
}

// countPerfData reads a perf.data file written by perf record and counts
// samples and lost samples per event, keyed by the event's attr type and
// config (for a tracepoint, its id). It reads the file once, sequentially, and decodes only
// record headers and ids, so it costs far less than perf report or perf
// script.
func countPerfData(path string) (dataCounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return dataCounts{}, err
	}
	defer f.Close()
	return countPerfDataFrom(f)
}

// readAttrs reads the events of the attrs section and the sample ids of
// their per-CPU instances (id to index in the events).
func readAttrs(f io.ReaderAt, attrSize, attrsOff, attrsLen uint64) ([]attrEntry, map[uint64]int, error) {
	le := binary.LittleEndian
	var attrs []attrEntry
	byID := map[uint64]int{}
	buf := make([]byte, attrSize)
	for i := uint64(0); i < attrsLen/attrSize; i++ {
		if _, err := f.ReadAt(buf, int64(attrsOff+i*attrSize)); err != nil {
			return nil, nil, fmt.Errorf("perf.data attr %d: %w", i, err)
		}
		// perf_event_attr: type u32, size u32, config u64, sample_period u64, sample_type u64.
		a := attrEntry{key: eventKey{le.Uint32(buf[0:]), le.Uint64(buf[8:])}, sampleType: le.Uint64(buf[24:])}
		idsOff, idsLen := le.Uint64(buf[attrSize-16:]), le.Uint64(buf[attrSize-8:])
		if idsLen%8 != 0 || idsLen > 1<<24 {
			return nil, nil, fmt.Errorf("perf.data attr %d: bad ids section size %d", i, idsLen)
		}
		ids := make([]byte, idsLen)
		if _, err := f.ReadAt(ids, int64(idsOff)); err != nil {
			return nil, nil, fmt.Errorf("perf.data attr %d ids: %w", i, err)
		}
		for j := 0; j < len(ids); j += 8 {
			id := le.Uint64(ids[j:])
			a.ids = append(a.ids, id)
			byID[id] = len(attrs)
		}
		attrs = append(attrs, a)
	}
	if len(attrs) == 0 {
		return nil, nil, errors.New("perf.data: no events in the attrs section")
	}
	// With more than one event perf puts PERF_SAMPLE_IDENTIFIER in every
	// event's sample_type; without it records cannot be told apart.
	if len(attrs) > 1 {
		for _, a := range attrs {
			if a.sampleType&sampleIdentifier == 0 {
				return nil, nil, fmt.Errorf("perf.data: event type %d config %#x has no PERF_SAMPLE_IDENTIFIER: cannot attribute samples to events", a.key.typ, a.key.config)
			}
		}
	}
	return attrs, byID, nil
}

func countPerfDataFrom(f io.ReaderAt) (dataCounts, error) {
	le := binary.LittleEndian
	var hdr [fileHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return dataCounts{}, fmt.Errorf("perf.data header: %w", err)
	}
	if le.Uint64(hdr[0:]) != perfMagic {
		return dataCounts{}, errors.New("not a little-endian PERFILE2 perf.data file (pipe mode or foreign endianness are not supported)")
	}
	attrSize := le.Uint64(hdr[16:])
	attrsOff, attrsLen := le.Uint64(hdr[24:]), le.Uint64(hdr[32:])
	dataOff, dataLen := le.Uint64(hdr[40:]), le.Uint64(hdr[48:])
	if attrSize < 16+32 || attrsLen%attrSize != 0 || attrsLen/attrSize > 1024 {
		return dataCounts{}, fmt.Errorf("perf.data: bad attrs section (attr_size %d, size %d)", attrSize, attrsLen)
	}
	if dataLen == 0 {
		return dataCounts{}, errors.New("perf.data: data section is empty: perf did not finish writing the file (killed before it could update the header?)")
	}

	attrs, byID, err := readAttrs(f, attrSize, attrsOff, attrsLen)
	if err != nil {
		return dataCounts{}, err
	}
	tally := recordTally{attrs: attrs, byID: byID, counts: make([]uint64, len(attrs)), lost: make([]uint64, len(attrs))}
	r := bufio.NewReaderSize(io.NewSectionReader(f, int64(dataOff), int64(dataLen)), 1<<20)
	var rec [1 << 16]byte
	for pos := uint64(0); pos < dataLen; {
		if _, err := io.ReadFull(r, rec[:8]); err != nil {
			return dataCounts{}, fmt.Errorf("perf.data: record header at data+%d: %w", pos, err)
		}
		typ, misc, size := le.Uint32(rec[0:]), le.Uint16(rec[4:]), int(le.Uint16(rec[6:]))
		if size < 8 {
			return dataCounts{}, fmt.Errorf("perf.data: record of size %d at data+%d: file is corrupt", size, pos)
		}
		body := rec[8:size]
		if _, err := io.ReadFull(r, body); err != nil {
			return dataCounts{}, fmt.Errorf("perf.data: record body at data+%d: %w", pos, err)
		}
		pos += uint64(size)
		if err := tally.add(typ, misc, body, pos); err != nil {
			return dataCounts{}, err
		}
	}
	return tally.result(), nil
}

// recordTally counts a perf.data file's records per event.
type recordTally struct {
	attrs           []attrEntry
	byID            map[uint64]int
	counts, lost    []uint64 // samples, lost samples, per event
	lostRecords     uint64
	haveLostSamples bool
}

// eventOf returns the event a sample id belongs to.
func (t *recordTally) eventOf(id uint64) (int, error) {
	if len(t.attrs) == 1 {
		return 0, nil
	}
	i, ok := t.byID[id]
	if !ok {
		return 0, fmt.Errorf("perf.data: record with unknown sample id %d", id)
	}
	return i, nil
}

// add counts one record of type typ; pos is where the next one starts.
func (t *recordTally) add(typ uint32, misc uint16, body []byte, pos uint64) error {
	le := binary.LittleEndian
	switch typ {
	case recordSample:
		var id uint64
		if len(t.attrs) > 1 {
			if len(body) < 8 {
				return fmt.Errorf("perf.data: short sample at data+%d", pos)
			}
			id = le.Uint64(body) // PERF_SAMPLE_IDENTIFIER comes first
		}
		i, err := t.eventOf(id)
		if err != nil {
			return err
		}
		t.counts[i]++
	case recordLost:
		if len(body) < 16 {
			return fmt.Errorf("perf.data: short PERF_RECORD_LOST at data+%d", pos)
		}
		t.lostRecords += le.Uint64(body[8:])
	case recordLostSamples:
		if misc&miscLostSamplesBPF != 0 {
			break
		}
		if len(body) < 8 {
			return fmt.Errorf("perf.data: short PERF_RECORD_LOST_SAMPLES at data+%d", pos)
		}
		var id uint64
		if len(t.attrs) > 1 {
			if len(body) < 16 {
				return fmt.Errorf("perf.data: PERF_RECORD_LOST_SAMPLES without sample id at data+%d", pos)
			}
			id = le.Uint64(body[len(body)-8:]) // PERF_SAMPLE_IDENTIFIER ends the sample_id trailer
		}
		i, err := t.eventOf(id)
		if err != nil {
			return err
		}
		t.lost[i] += le.Uint64(body)
		t.haveLostSamples = true
	case recordCompressed, recordCompressed2:
		return errors.New("perf.data: compressed records (perf record -z) are not supported")
	}
	return nil
}

// result sums the counts per event key.
func (t *recordTally) result() dataCounts {
	c := dataCounts{samples: map[eventKey]uint64{}, lostSamples: map[eventKey]uint64{},
		lostRecords: t.lostRecords, haveLostSamples: t.haveLostSamples}
	for i, a := range t.attrs {
		c.samples[a.key] += t.counts[i]
		c.lostSamples[a.key] += t.lost[i]
	}
	return c
}
