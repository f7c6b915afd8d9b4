package event

// SeqTracker follows the per-CPU, per-kind sequence numbers of the records a
// reader returns, so that the gaps a reader sees can be compared with the
// producer's drop counters. It allocates only when a new CPU shows up or
// a CPU and kind's records first repeat a truth stamp.
type SeqTracker struct {
	cpus []seqCounts
	// repeats: per CPU and kind (same index as cpus), the records read
	// whose truth stamp repeated the one before; nil until the first.
	repeats []*RepeatEvidence
}

// seqCounts is one CPU and kind's accounting, kept together so that a
// record touches one cache line.
type seqCounts struct {
	next      uint64 // next expected sequence number
	captured  uint64
	gaps      uint64
	disorder  uint64 // records at or below an already seen number
	lastTruth uint64 // the truth stamp of record next-1 (noStamp: none)
}

// noStamp marks a record without a truth stamp; no count reaches it.
const noStamp = ^uint64(0)

// maxRepeatSamples bounds the repeated-stamp records kept per CPU and
// kind, and maxRepeatTasks the tasks counted.
const (
	maxRepeatSamples = 8
	maxRepeatTasks   = 16
)

// RepeatEvidence is what the reader saw of one CPU and kind's repeated
// truth stamps: records, read one after the other in sequence, whose
// stamp equals the record before's, so that the counter did not count
// the hit between them (or the hit nested in the one before). When the
// truth does not balance, they say which tasks' hits went uncounted and
// when.
type RepeatEvidence struct {
	// Seen counts them; Samples are the first few; Tasks counts them per
	// thread (pid), up to maxRepeatTasks threads (Other: the rest).
	Seen    uint64
	Samples []StampRepeat
	Tasks   map[uint32]uint64
	Other   uint64
	// FirstNs and LastNs are the first and last one's timestamps.
	FirstNs, LastNs uint64
	// Comms and Sites name the threads and call sites, where the
	// capture could (a thread's comm, function+offset); filled in only
	// when the accounting check fails.
	Comms map[uint32]string
	Sites map[uint64]string
}

// StampRepeat is one record whose truth stamp repeated the one before:
// its thread, when it was written and where from.
type StampRepeat struct {
	Pid, Tgid uint32
	TsNs      uint64
	CallSite  uint64
}

// Observe accounts one record.
func (t *SeqTracker) Observe(rec *Record) {
	k := int(rec.Kind)
	if k >= int(NumKinds) {
		k = 0 // counted, under kind 0, so corrupt kinds show up
	}
	i := int(rec.CPU)*int(NumKinds) + k
	if i >= len(t.cpus) {
		t.grow(int(rec.CPU) + 1)
	}
	c := &t.cpus[i]
	c.captured++
	if rec.Seq >= c.next {
		stamp := noStamp
		if rec.Flags&FlagTruth != 0 {
			stamp = rec.Truth
		}
		if stamp == c.lastTruth && stamp != noStamp && rec.Seq == c.next {
			t.repeat(i, rec)
		}
		c.lastTruth = stamp
		c.gaps += rec.Seq - c.next
		c.next = rec.Seq + 1
	} else {
		c.disorder++
	}
}

// repeat keeps the evidence of a record at index i whose stamp repeats
// the record before's.
func (t *SeqTracker) repeat(i int, rec *Record) {
	ev := t.repeats[i]
	if ev == nil {
		ev = &RepeatEvidence{Tasks: map[uint32]uint64{}, FirstNs: rec.TsNs}
		t.repeats[i] = ev
	}
	ev.Seen++
	ev.LastNs = rec.TsNs
	if len(ev.Samples) < maxRepeatSamples {
		ev.Samples = append(ev.Samples, StampRepeat{Pid: rec.Pid, Tgid: rec.Tgid, TsNs: rec.TsNs, CallSite: rec.CallSite})
	}
	if _, ok := ev.Tasks[rec.Pid]; ok || len(ev.Tasks) < maxRepeatTasks {
		ev.Tasks[rec.Pid]++
	} else {
		ev.Other++
	}
}

func (t *SeqTracker) grow(cpus int) {
	for range cpus*int(NumKinds) - len(t.cpus) {
		t.cpus = append(t.cpus, seqCounts{lastTruth: noStamp})
		t.repeats = append(t.repeats, nil)
	}
}

// CPUs returns one more than the highest CPU seen.
func (t *SeqTracker) CPUs() int { return len(t.cpus) / int(NumKinds) }

func (t *SeqTracker) at(cpu int, k Kind) (seqCounts, bool) {
	i := cpu*int(NumKinds) + int(k)
	if cpu >= t.CPUs() {
		return seqCounts{}, false
	}
	return t.cpus[i], true
}

// Repeats returns the repeated stamps seen among cpu's records of kind k
// (nil: none).
func (t *SeqTracker) Repeats(cpu int, k Kind) *RepeatEvidence {
	if cpu >= t.CPUs() {
		return nil
	}
	return t.repeats[cpu*int(NumKinds)+int(k)]
}

// Captured returns the records seen for cpu and kind.
func (t *SeqTracker) Captured(cpu int, k Kind) uint64 {
	c, _ := t.at(cpu, k)
	return c.captured
}

// Gaps returns the sequence numbers never seen for cpu and kind, given the
// producer's attempt count (the next number it would have stamped), so
// that records lost after the last one seen count too.
func (t *SeqTracker) Gaps(cpu int, k Kind, attempts uint64) uint64 {
	c, ok := t.at(cpu, k)
	if !ok {
		return attempts
	}
	g := c.gaps
	if attempts > c.next {
		g += attempts - c.next
	}
	return g
}

// Disorder returns how many records of cpu and kind arrived with a
// sequence number at or below one already seen (duplicates or
// reordering); a correct producer and reader give 0.
func (t *SeqTracker) Disorder(cpu int, k Kind) uint64 {
	c, _ := t.at(cpu, k)
	return c.disorder
}
